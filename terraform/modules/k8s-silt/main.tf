# Deploys deploy/ (kustomize) with terraform. One source of truth: the objects are
# rendered from the same kustomization that `kubectl apply -k` uses; this module adds
# only what differs per environment (image, bucket, region, role) as kustomize
# instructions, never as copies of manifests.
#
# Why the kbst/kustomization provider: it renders the overlay in-process at plan time
# (no kubectl on the machine running terraform, no pre-rendered file that can drift
# from deploy/), and applies each object with server-side apply, in dependency order.
# hashicorp/kubernetes' kubernetes_manifest would need the overlay rendered by some
# other step first and the cluster's API reachable at plan time for every object.

locals {
  kustomize_dir = coalesce(var.kustomize_dir, "${path.module}/../../../deploy/overlays/aws")

  agent_settings = merge(
    {
      SILT_OBJECT_STORE = var.object_store_url
      AWS_REGION        = var.aws_region
    },
    var.agent_settings,
  )

  # ids_prio: [0] namespaces and CRDs, [1] everything else, [2] webhooks.
  manifests = data.kustomization_overlay.silt.manifests
  ids_prio  = data.kustomization_overlay.silt.ids_prio
}

data "kustomization_overlay" "silt" {
  resources = [local.kustomize_dir]

  # The overlay lives outside this module's directory.
  kustomize_options {
    load_restrictor = "none"
  }

  images {
    name     = "silt"
    new_name = var.image_repository
    new_tag  = var.image_tag
    digest   = var.image_digest
  }

  config_map_generator {
    name     = "silt-agent"
    behavior = "merge"
    literals = [for key in sort(keys(local.agent_settings)) : "${key}=${local.agent_settings[key]}"]
  }

  patches {
    target {
      kind = "ServiceAccount"
      name = "silt-agent"
    }
    patch = yamlencode({
      apiVersion = "v1"
      kind       = "ServiceAccount"
      metadata = {
        name = "silt-agent"
        annotations = {
          "eks.amazonaws.com/role-arn" = var.agent_role_arn
        }
      }
    })
  }
}

resource "kustomization_resource" "first" {
  for_each = local.ids_prio[0]

  manifest = local.manifests[each.value]
}

resource "kubernetes_secret_v1" "database" {
  count = var.manage_database_secret ? 1 : 0

  metadata {
    name      = "silt-database"
    namespace = var.namespace
    labels = {
      "app.kubernetes.io/name"    = "silt"
      "app.kubernetes.io/part-of" = "silt"
    }
  }

  data = merge(
    { url = var.database_url },
    var.database_ca_pem == null ? {} : { "ca.pem" = var.database_ca_pem },
  )

  lifecycle {
    precondition {
      condition     = var.database_url != null
      error_message = "manage_database_secret needs database_url."
    }
    precondition {
      condition     = var.database_ca_pem != null || !strcontains(coalesce(var.database_url, ""), "sslrootcert=/etc/silt/db-ca/")
      error_message = "database_url verifies PostgreSQL against /etc/silt/db-ca/ca.pem: set database_ca_pem (for RDS, the contents of https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)."
    }
  }

  depends_on = [kustomization_resource.first]
}

resource "kustomization_resource" "second" {
  for_each = local.ids_prio[1]

  manifest = local.manifests[each.value]

  # Deployments start only once their Secret exists.
  depends_on = [kustomization_resource.first, kubernetes_secret_v1.database]
}

resource "kustomization_resource" "third" {
  for_each = local.ids_prio[2]

  manifest = local.manifests[each.value]

  depends_on = [kustomization_resource.second]
}
