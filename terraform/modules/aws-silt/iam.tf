# The agents' IAM role, assumed through the EKS OIDC provider (IRSA) by exactly one
# ServiceAccount, with access to Silt's prefix of the bucket and nothing else. The
# metadata service needs no AWS permissions.

locals {
  oidc_issuer_host = trimprefix(var.eks_oidc_issuer, "https://")
  object_arns      = var.object_prefix == "" ? "${aws_s3_bucket.silt.arn}/*" : "${aws_s3_bucket.silt.arn}/${var.object_prefix}/*"
}

data "aws_iam_policy_document" "agent_trust" {
  statement {
    sid     = "SiltAgentServiceAccount"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.agent_service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "agent" {
  name                 = "${var.name}-agent"
  description          = "Silt agents (${var.namespace}/${var.agent_service_account}): read and write Silt's objects in s3://${local.bucket_name}"
  assume_role_policy   = data.aws_iam_policy_document.agent_trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "agent_s3" {
  # Listing, only under the prefix (garbage collection and recovery list objects).
  statement {
    sid       = "ListSiltPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.silt.arn]

    dynamic "condition" {
      for_each = var.object_prefix == "" ? [] : [var.object_prefix]

      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [condition.value, "${condition.value}/*"]
      }
    }
  }

  # The write path (put, multipart upload), the read path (get, ranged get) and
  # garbage collection (delete), under the prefix only.
  statement {
    sid = "ReadWriteSiltObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [local.object_arns]
  }

  # Finding multipart uploads to clean up can only be granted on the bucket.
  statement {
    sid       = "ListSiltMultipartUploads"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.silt.arn]
  }

  # SSE-KMS: S3 asks KMS for data keys on the caller's behalf, and only through S3.
  statement {
    sid       = "UseBucketKeyThroughS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [local.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "agent_s3" {
  name   = "silt-objects"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.agent_s3.json
}
