variable "name" {
  description = "Name prefix of every resource this module creates (bucket, role, key, database)."
  type        = string
  default     = "silt"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# ---- object store ----------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the S3 bucket for Silt's segments. Null: \"<name>-<account id>-<region>\"."
  type        = string
  default     = null
}

variable "object_prefix" {
  description = "Key prefix under which Silt keeps its objects (the path of s3://bucket/prefix). The agents' role can touch nothing outside it. Empty: the whole bucket."
  type        = string
  default     = "silt"

  validation {
    condition     = !startswith(var.object_prefix, "/") && !endswith(var.object_prefix, "/")
    error_message = "object_prefix must not start or end with a slash."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a non-empty bucket. Leave false outside of test accounts: the bucket is the only copy of every record."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days a deleted or overwritten object version stays recoverable (versioning is on; see docs/deploy.md). Bounds the cost of keeping deleted segments."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which S3 aborts multipart uploads that were never completed (an agent that died mid-upload), so their parts stop costing storage."
  type        = number
  default     = 1
}

variable "orphan_prefix" {
  description = "Key prefix (relative to the bucket, e.g. \"silt/staging\") whose objects S3 itself expires after orphan_expiration_days. Null: no such rule. Only set it to a prefix where Silt writes nothing that a committed index entry refers to; committed segments must never expire by age."
  type        = string
  default     = null
}

variable "orphan_expiration_days" {
  description = "Age in days at which objects under orphan_prefix expire."
  type        = number
  default     = 7
}

variable "kms_key_arn" {
  description = "ARN of an existing KMS key for the bucket's (and the database's) encryption. Null: the module creates a dedicated key with rotation."
  type        = string
  default     = null
}

# ---- agents' identity (IRSA) -----------------------------------------------------------

variable "eks_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>)."
  type        = string
}

variable "eks_oidc_issuer" {
  description = "The cluster's OIDC issuer URL, with or without https:// (aws_eks_cluster.identity[0].oidc[0].issuer)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the Silt agents; part of the role's trust condition."
  type        = string
  default     = "silt"
}

variable "agent_service_account" {
  description = "Name of the agents' Kubernetes ServiceAccount; part of the role's trust condition."
  type        = string
  default     = "silt-agent"
}

# ---- PostgreSQL (optional) -------------------------------------------------------------

variable "create_database" {
  description = "Create an RDS PostgreSQL instance for the metadata service. False: bring your own PostgreSQL and pass its URL to the metadata service."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "VPC of the database (required when create_database)."
  type        = string
  default     = null
}

variable "database_subnet_ids" {
  description = "Private subnets for the database, in at least two availability zones (required when create_database)."
  type        = list(string)
  default     = []
}

variable "database_allowed_security_group_ids" {
  description = "Security groups allowed to reach PostgreSQL on 5432: the EKS cluster or node security group whose pods run the metadata service."
  type        = list(string)
  default     = []
}

variable "database_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "database_engine_version" {
  description = "PostgreSQL major version (RDS picks the newest minor; minor upgrades are automatic)."
  type        = string
  default     = "16"
}

variable "database_allocated_storage_gb" {
  description = "Initial storage in GiB; grows automatically up to database_max_allocated_storage_gb."
  type        = number
  default     = 50
}

variable "database_max_allocated_storage_gb" {
  description = "Upper bound of storage autoscaling in GiB."
  type        = number
  default     = 500
}

variable "database_multi_az" {
  description = "Run a synchronous standby in another availability zone."
  type        = bool
  default     = true
}

variable "database_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 7
}

variable "database_deletion_protection" {
  description = "Refuse to delete the database. Turn off only to tear down a test environment."
  type        = bool
  default     = true
}

variable "database_require_tls" {
  description = "Force TLS on every connection (rds.force_ssl=1) and make the database_url output verify the server (sslmode=verify-full, sslrootcert=/etc/silt/db-ca/ca.pem: give k8s-silt the RDS CA bundle as database_ca_pem)."
  type        = bool
  default     = true
}
