# Security groups: only the API is reachable from outside (443, and 80 for
# Let's Encrypt's HTTP challenge and the redirect); SSH only from
# admin_cidrs. The database takes connections from kiln's parts alone; the
# GPU agent takes none (it pulls work).

resource "aws_security_group" "api" {
  count       = local.aws ? 1 : 0
  name        = "${var.name}-api"
  description = "kiln serve behind Caddy: HTTPS from api_cidrs"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "api_https" {
  for_each          = local.aws ? toset(var.api_cidrs) : toset([])
  security_group_id = aws_security_group.api[0].id
  description       = "kiln API over HTTPS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "api_http" {
  for_each          = local.aws ? toset(var.api_cidrs) : toset([])
  security_group_id = aws_security_group.api[0].id
  description       = "Let's Encrypt HTTP challenge and the redirect to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each          = local.aws ? { for pair in setproduct(["api", "gpu"], var.admin_cidrs) : "${pair[0]}-${pair[1]}" => pair } : {}
  security_group_id = each.value[0] == "api" ? aws_security_group.api[0].id : aws_security_group.gpu[0].id
  description       = "SSH from admin_cidrs"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value[1]
}

resource "aws_security_group" "gpu" {
  count       = local.aws ? 1 : 0
  name        = "${var.name}-gpu"
  description = "kiln agent: no inbound; it pulls work from the database"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_security_group" "lambda" {
  count       = local.aws && local.lambda ? 1 : 0
  name        = "${var.name}-lambda"
  description = "kiln functions on Lambda: no inbound"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_security_group" "db" {
  count       = local.aws ? 1 : 0
  name        = "${var.name}-db"
  description = "kiln's PostgreSQL: from kiln serve, the agent and the functions only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "db" {
  for_each = local.aws ? merge(
    { api = aws_security_group.api[0].id, gpu = aws_security_group.gpu[0].id },
    local.lambda ? { lambda = aws_security_group.lambda[0].id } : {},
  ) : {}
  security_group_id            = aws_security_group.db[0].id
  description                  = "PostgreSQL from kiln's ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = each.value
}

# kiln's parts call out (S3, SQS, Lambda, the database, apt and the
# downloads at first boot, Hugging Face for the models).
resource "aws_vpc_security_group_egress_rule" "out" {
  for_each = local.aws ? merge(
    { api = aws_security_group.api[0].id, gpu = aws_security_group.gpu[0].id },
    local.lambda ? { lambda = aws_security_group.lambda[0].id } : {},
  ) : {}
  security_group_id = each.value
  description       = "outbound"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
