output "bucket_name" {
  description = "S3 bucket holding Silt's segments."
  value       = module.aws.bucket_name
}

output "object_store_url" {
  description = "SILT_OBJECT_STORE of the agents."
  value       = module.aws.object_store_url
}

output "agent_role_arn" {
  description = "IAM role of the agents (IRSA); the eks.amazonaws.com/role-arn annotation of ServiceAccount silt/silt-agent."
  value       = module.aws.agent_role_arn
}

output "region" {
  description = "AWS region of the bucket and database."
  value       = module.aws.region
}

output "database_endpoint" {
  description = "host:port of the RDS instance, or null."
  value       = module.aws.database_endpoint
}

output "database_url" {
  description = "SILT_DATABASE of the metadata service (sensitive; `terraform output -raw database_url`)."
  value       = module.aws.database_url
  sensitive   = true
}

output "agent_service" {
  description = "In-cluster URL of Silt's HTTP API, or null when deploy_workloads is false."
  value       = var.deploy_workloads ? module.k8s[0].agent_service : null
}
