output "namespace" {
  description = "Namespace Silt runs in."
  value       = var.namespace
}

output "agent_service" {
  description = "In-cluster address of the agents' HTTP API (the Service silt-agent)."
  value       = "http://silt-agent.${var.namespace}.svc:8080"
}

output "object_ids" {
  description = "Kubernetes objects applied from the kustomize overlay (group_kind/namespace/name)."
  value       = sort(tolist(setunion(local.ids_prio[0], local.ids_prio[1], local.ids_prio[2])))
}
