terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.31, < 4.0"
    }
    kustomization = {
      source  = "kbst/kustomization"
      version = ">= 0.9.6, < 1.0"
    }
  }

  # Keep the state remote and encrypted in real use: it holds the database password.
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "silt/terraform.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}
