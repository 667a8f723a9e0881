terraform {
  required_version = ">= 1.6.0"

  required_providers {
    # Renders deploy/ with the kustomize library built into the provider (the same
    # engine as `kubectl kustomize`) and applies each object server-side.
    kustomization = {
      source  = "kbst/kustomization"
      version = ">= 0.9.6, < 1.0"
    }
    # Only for the Secret, which deploy/ deliberately does not contain.
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.31, < 4.0"
    }
  }
}
