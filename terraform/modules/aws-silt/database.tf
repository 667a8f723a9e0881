# Optional: PostgreSQL on RDS for the metadata service (create_database = true).
# Private subnets only, reachable from the given security groups only, encrypted at
# rest with the module's key and in transit (rds.force_ssl).

locals {
  database_count = var.create_database ? 1 : 0
  database_major = split(".", var.database_engine_version)[0]
}

# Letters and digits only, so the password needs no escaping inside the URL.
resource "random_password" "database" {
  count = local.database_count

  length  = 40
  special = false
}

resource "aws_db_subnet_group" "silt" {
  count = local.database_count

  name        = "${var.name}-meta"
  description = "Private subnets of the Silt metadata database"
  subnet_ids  = var.database_subnet_ids
  tags        = var.tags

  lifecycle {
    precondition {
      condition     = var.vpc_id != null && length(var.database_subnet_ids) >= 2
      error_message = "create_database needs vpc_id and at least two private database_subnet_ids."
    }
  }
}

resource "aws_security_group" "database" {
  count = local.database_count

  name_prefix = "${var.name}-meta-db-"
  description = "Silt metadata database: PostgreSQL from the allowed security groups only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-meta-db" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "database" {
  for_each = var.create_database ? toset(var.database_allowed_security_group_ids) : toset([])

  security_group_id            = aws_security_group.database[0].id
  description                  = "PostgreSQL from ${each.value}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_parameter_group" "silt" {
  count = local.database_count

  name_prefix = "${var.name}-meta-"
  description = "Silt metadata database: TLS and query logging"
  family      = "postgres${local.database_major}"
  tags        = var.tags

  parameter {
    name  = "rds.force_ssl"
    value = var.database_require_tls ? "1" : "0"
  }

  # Log statements slower than 500 ms: the metadata service's calls are short, so
  # anything slower is worth a look.
  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "silt" {
  #checkov:skip=CKV_AWS_161:Silt's metadata service authenticates with a password from the database URL; IAM database authentication needs short-lived tokens that its PostgreSQL client does not fetch.
  #checkov:skip=CKV_AWS_118:Enhanced monitoring needs an extra IAM role and costs per instance; Performance Insights and CloudWatch logs (both on) cover the metadata service's needs. Turn it on per deployment if wanted.
  count = local.database_count

  identifier     = "${var.name}-meta"
  engine         = "postgres"
  engine_version = var.database_engine_version
  instance_class = var.database_instance_class

  db_name  = "silt"
  username = "silt"
  password = random_password.database[0].result
  port     = 5432

  allocated_storage     = var.database_allocated_storage_gb
  max_allocated_storage = var.database_max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = local.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.silt[0].name
  vpc_security_group_ids = [aws_security_group.database[0].id]
  parameter_group_name   = aws_db_parameter_group.silt[0].name
  publicly_accessible    = false
  multi_az               = var.database_multi_az

  backup_retention_period   = var.database_backup_retention_days
  copy_tags_to_snapshot     = true
  deletion_protection       = var.database_deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-meta-final"

  auto_minor_version_upgrade            = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = local.kms_key_arn
  performance_insights_retention_period = 7
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]

  tags = var.tags
}
