variable "region" {
  description = "AWS region of the EKS cluster; the bucket and database are created there too."
  type        = string
}

variable "cluster_name" {
  description = "Name of the existing EKS cluster (with an IAM OIDC provider associated, see docs/deploy.md)."
  type        = string
}

variable "name" {
  description = "Name prefix of the AWS resources."
  type        = string
  default     = "silt"
}

variable "image_repository" {
  description = "Repository of the pushed silt image, e.g. 111122223333.dkr.ecr.eu-west-1.amazonaws.com/silt."
  type        = string
}

variable "image_tag" {
  description = "Tag of the pushed silt image."
  type        = string
}

variable "image_digest" {
  description = "Optional sha256:... digest of the pushed image."
  type        = string
  default     = null
}

variable "create_database" {
  description = "Create RDS PostgreSQL for the metadata service. False: set database_url to your own."
  type        = bool
  default     = true
}

variable "database_subnet_ids" {
  description = "Private subnets for RDS, in two or more zones (required when create_database; not defaulted to the cluster's subnets, which may be public)."
  type        = list(string)
  default     = []
}

variable "database_require_tls" {
  description = "Force TLS to RDS (rds.force_ssl=1) and verify the server's certificate against database_ca_pem (sslmode=verify-full)."
  type        = bool
  default     = true
}

variable "database_ca_pem" {
  description = "The RDS CA bundle, PEM: download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem and pass file(\"global-bundle.pem\"). Required while database_require_tls is on."
  type        = string
  default     = null
}

variable "database_url" {
  description = "PostgreSQL URL of an existing database, used when create_database is false."
  type        = string
  default     = null
  sensitive   = true
}

variable "database_secret_managed_elsewhere" {
  description = "Do not create the Secret silt/silt-database; something else (external-secrets, kubectl) does."
  type        = bool
  default     = false
}

variable "deploy_workloads" {
  description = "Also deploy Silt into the cluster (modules/k8s-silt). False: only the AWS resources; deploy with `kubectl apply -k` as docs/deploy.md shows."
  type        = bool
  default     = true
}

variable "force_destroy_bucket" {
  description = "Let `terraform destroy` delete the bucket with its data. For test accounts only."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}
