# Silt on AWS, below Kubernetes: the bucket that is the source of truth, the key that
# encrypts it, the agents' IAM role (IRSA) and, optionally, the metadata database.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  region      = data.aws_region.current.id
  bucket_name = coalesce(var.bucket_name, "${var.name}-${data.aws_caller_identity.current.account_id}-${local.region}")

  # Must be known at plan time: pass a literal ARN or leave it null.
  create_kms_key = var.kms_key_arn == null
  kms_key_arn    = local.create_kms_key ? aws_kms_key.silt[0].arn : var.kms_key_arn

  object_store_url = var.object_prefix == "" ? "s3://${local.bucket_name}" : "s3://${local.bucket_name}/${var.object_prefix}"
}

# ---- encryption key --------------------------------------------------------------------

data "aws_iam_policy_document" "kms" {
  count = local.create_kms_key ? 1 : 0

  # The account (its IAM policies) administers and uses the key; S3 and RDS use it on
  # behalf of callers that IAM allows (the agents' role, terraform).
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "silt" {
  count = local.create_kms_key ? 1 : 0

  description             = "${var.name}: encrypts Silt's segments in S3 and its metadata database"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms[0].json
  tags                    = var.tags
}

resource "aws_kms_alias" "silt" {
  count = local.create_kms_key ? 1 : 0

  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.silt[0].key_id
}

# ---- bucket ----------------------------------------------------------------------------

resource "aws_s3_bucket" "silt" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice that doubles storage and request cost at this volume; S3 already stores objects redundantly across zones. Add a replication configuration per deployment if a region-loss RPO demands it.
  #checkov:skip=CKV_AWS_18:Server access logs would add one log record per request at millions of requests a second; audit S3 data access with CloudTrail data events scoped to the prefix instead.
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications: Silt learns about objects from its own metadata index, never from bucket events.
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "silt" {
  bucket = aws_s3_bucket.silt.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "silt" {
  bucket = aws_s3_bucket.silt.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "silt" {
  bucket = aws_s3_bucket.silt.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    # S3 Bucket Keys: one KMS call per bucket key instead of one per object, which
    # keeps KMS cost and throttling out of the write path.
    bucket_key_enabled = true
  }
}

# Versioning on: Silt writes every object once under a fresh key and deletes only
# through its garbage collector, so versions cost nothing on the write path; what they
# buy is a recovery window (noncurrent_version_retention_days) against a GC bug or an
# operator's mistake deleting acknowledged data. The lifecycle rule below bounds that
# window's storage cost.
resource "aws_s3_bucket_versioning" "silt" {
  bucket = aws_s3_bucket.silt.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "silt" {
  bucket = aws_s3_bucket.silt.id

  # Applies to the whole bucket: parts of uploads that never completed, and versions
  # that Silt's GC deleted.
  rule {
    id     = "abort-incomplete-uploads-and-expire-deleted-versions"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  # Only when an orphan prefix is defined (see var.orphan_prefix): committed segments
  # are never expired by age; retention is Silt's job, per topic.
  dynamic "rule" {
    for_each = var.orphan_prefix == null ? [] : [var.orphan_prefix]

    content {
      id     = "expire-orphans"
      status = "Enabled"

      filter {
        prefix = "${trimsuffix(rule.value, "/")}/"
      }

      abort_incomplete_multipart_upload {
        days_after_initiation = var.abort_incomplete_multipart_days
      }

      expiration {
        days = var.orphan_expiration_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.silt]
}

data "aws_iam_policy_document" "bucket" {
  # No plain-HTTP access, from anyone.
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.silt.arn,
      "${aws_s3_bucket.silt.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "silt" {
  bucket = aws_s3_bucket.silt.id
  policy = data.aws_iam_policy_document.bucket.json

  depends_on = [aws_s3_bucket_public_access_block.silt]
}
