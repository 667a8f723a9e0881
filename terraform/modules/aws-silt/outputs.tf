output "bucket_name" {
  description = "Name of the S3 bucket holding Silt's segments."
  value       = aws_s3_bucket.silt.bucket
}

output "bucket_arn" {
  description = "ARN of the S3 bucket."
  value       = aws_s3_bucket.silt.arn
}

output "region" {
  description = "AWS region of the bucket (and the database); the agents' AWS_REGION."
  value       = local.region
}

output "object_store_url" {
  description = "The agents' SILT_OBJECT_STORE: s3://<bucket>/<object_prefix>."
  value       = local.object_store_url
}

output "agent_role_arn" {
  description = "IAM role of the agents; goes into the eks.amazonaws.com/role-arn annotation of their ServiceAccount."
  value       = aws_iam_role.agent.arn
}

output "kms_key_arn" {
  description = "KMS key encrypting the bucket (and the database, if created)."
  value       = local.kms_key_arn
}

output "database_endpoint" {
  description = "host:port of the RDS PostgreSQL instance, or null when create_database is false."
  value       = var.create_database ? aws_db_instance.silt[0].endpoint : null
}

output "database_url" {
  description = "The metadata service's SILT_DATABASE (postgres://silt:<password>@host:5432/silt), or null when create_database is false. With database_require_tls it verifies the server against the RDS CA bundle mounted at /etc/silt/db-ca/ca.pem (k8s-silt's database_ca_pem). Sensitive: it carries the password."
  value       = var.create_database ? "postgres://silt:${random_password.database[0].result}@${aws_db_instance.silt[0].address}:${aws_db_instance.silt[0].port}/silt${var.database_require_tls ? "?sslmode=verify-full&sslrootcert=/etc/silt/db-ca/ca.pem" : ""}" : null
  sensitive   = true
}
