resource "aws_db_subnet_group" "kiln" {
  count      = local.aws ? 1 : 0
  name       = "${var.name}-db"
  subnet_ids = local.private_ids
  tags       = local.tags
}

resource "aws_db_instance" "kiln" {
  count                        = local.aws ? 1 : 0
  identifier                   = "${var.name}-db"
  engine                       = "postgres"
  engine_version               = var.db_engine_version
  instance_class               = var.db_instance_class
  allocated_storage            = 20
  max_allocated_storage        = 200
  storage_type                 = "gp3"
  storage_encrypted            = true
  db_name                      = "kiln"
  username                     = "kiln"
  password                     = var.db_password
  db_subnet_group_name         = aws_db_subnet_group.kiln[0].name
  vpc_security_group_ids       = [aws_security_group.db[0].id]
  publicly_accessible          = false
  backup_retention_period      = 7
  deletion_protection          = !var.force_destroy
  skip_final_snapshot          = var.force_destroy
  final_snapshot_identifier    = var.force_destroy ? null : "${var.name}-db-final"
  auto_minor_version_upgrade   = true
  performance_insights_enabled = false
  tags                         = local.tags
}
