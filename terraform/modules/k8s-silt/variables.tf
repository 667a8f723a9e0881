variable "kustomize_dir" {
  description = "Kustomize directory to deploy. Null: deploy/overlays/aws of this repository. Whatever it is, the workloads come from deploy/base; this module only sets the per-environment values below on top."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace the overlay deploys into (deploy/base sets \"silt\"); the database Secret is created there. Change it only together with the overlay."
  type        = string
  default     = "silt"
}

variable "image_repository" {
  description = "Registry and repository of the silt image, e.g. 111122223333.dkr.ecr.eu-west-1.amazonaws.com/silt."
  type        = string
}

variable "image_tag" {
  description = "Tag of the silt image. Ignored by the runtime when image_digest is set, but kept for readability."
  type        = string
}

variable "image_digest" {
  description = "Optional sha256:... digest of the image; pins exactly the pushed bytes."
  type        = string
  default     = null
}

variable "object_store_url" {
  description = "The agents' SILT_OBJECT_STORE, s3://bucket/prefix (aws-silt output object_store_url)."
  type        = string

  validation {
    condition     = startswith(var.object_store_url, "s3://")
    error_message = "object_store_url must be an s3:// URL."
  }
}

variable "aws_region" {
  description = "Region of the bucket; the agents' AWS_REGION."
  type        = string
}

variable "agent_role_arn" {
  description = "IAM role the agents assume through IRSA (aws-silt output agent_role_arn)."
  type        = string
}

variable "agent_settings" {
  description = "Extra or overriding settings of the agents, SILT_* environment variables to values, merged into the silt-agent ConfigMap (e.g. { SILT_FLUSH_INTERVAL_MS = \"50\" })."
  type        = map(string)
  default     = {}
}

variable "manage_database_secret" {
  description = "Create the Secret silt-database (key url) from database_url. False: the Secret is managed elsewhere (external-secrets, kubectl)."
  type        = bool
  default     = true
}

variable "database_ca_pem" {
  description = "PEM CA bundle the metadata service verifies PostgreSQL's certificate against (for RDS: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem). Stored as key ca.pem of the Secret silt-database and mounted at /etc/silt/db-ca/ca.pem; the URL names it with sslrootcert=/etc/silt/db-ca/ca.pem. Null: the system's CAs."
  type        = string
  default     = null
}

variable "database_url" {
  description = "The metadata service's PostgreSQL URL, postgres://user:pass@host:5432/db (aws-silt output database_url, or your own). Stored in the Terraform state: protect the state accordingly."
  type        = string
  default     = null
  sensitive   = true
}
