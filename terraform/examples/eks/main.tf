# Silt on an existing EKS cluster: the AWS side (bucket, key, IRSA role, RDS) and the
# workloads from deploy/overlays/aws, wired together.

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ "app.kubernetes.io/part-of" = "silt" }, var.tags)
  }
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_iam_openid_connect_provider" "this" {
  url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

locals {
  cluster_endpoint = data.aws_eks_cluster.this.endpoint
  cluster_ca       = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)

  # Short-lived tokens from the AWS CLI, as `aws eks update-kubeconfig` configures.
  exec_args = ["eks", "get-token", "--cluster-name", var.cluster_name, "--region", var.region]

  kubeconfig = yamlencode({
    apiVersion      = "v1"
    kind            = "Config"
    current-context = "silt"
    clusters = [{
      name = "eks"
      cluster = {
        server                     = local.cluster_endpoint
        certificate-authority-data = data.aws_eks_cluster.this.certificate_authority[0].data
      }
    }]
    users = [{
      name = "terraform"
      user = {
        exec = {
          apiVersion = "client.authentication.k8s.io/v1beta1"
          command    = "aws"
          args       = local.exec_args
        }
      }
    }]
    contexts = [{
      name    = "silt"
      context = { cluster = "eks", user = "terraform" }
    }]
  })
}

provider "kubernetes" {
  host                   = local.cluster_endpoint
  cluster_ca_certificate = local.cluster_ca

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = local.exec_args
  }
}

provider "kustomization" {
  kubeconfig_raw = local.kubeconfig
}

module "aws" {
  source = "../../modules/aws-silt"

  name          = var.name
  force_destroy = var.force_destroy_bucket
  tags          = var.tags

  eks_oidc_provider_arn = data.aws_iam_openid_connect_provider.this.arn
  eks_oidc_issuer       = data.aws_eks_cluster.this.identity[0].oidc[0].issuer

  create_database      = var.create_database
  database_require_tls = var.database_require_tls
  vpc_id               = data.aws_eks_cluster.this.vpc_config[0].vpc_id
  database_subnet_ids  = var.database_subnet_ids
  # Managed node groups put pods in the cluster security group; add your node group's
  # security group here if it differs.
  database_allowed_security_group_ids = [data.aws_eks_cluster.this.vpc_config[0].cluster_security_group_id]
}

module "k8s" {
  source = "../../modules/k8s-silt"
  count  = var.deploy_workloads ? 1 : 0

  image_repository = var.image_repository
  image_tag        = var.image_tag
  image_digest     = var.image_digest

  object_store_url = module.aws.object_store_url
  aws_region       = module.aws.region
  agent_role_arn   = module.aws.agent_role_arn
  # The Secret silt/silt-database: from RDS, from var.database_url, or (when
  # database_secret_managed_elsewhere) left to an external-secrets controller or kubectl.
  manage_database_secret = !var.database_secret_managed_elsewhere
  database_url           = var.create_database ? module.aws.database_url : var.database_url
  database_ca_pem        = var.database_ca_pem
}
