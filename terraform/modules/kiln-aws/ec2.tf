data "aws_ami" "debian" {
  count       = local.aws && var.api_ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
}

data "aws_ami" "gpu" {
  count       = local.aws && var.gpu_instance_type != null && var.gpu_ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["amazon"]
  filter {
    name   = "name"
    values = ["Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

# kiln serve on one instance: kiln-host's user-data with RDS and S3 in
# place of a local Postgres and MinIO, behind Caddy.
module "host" {
  source = "../kiln-host"

  public_url       = var.public_url
  tls_mode         = var.localstack ? "none" : "caddy" # on LocalStack kiln runs on your machine, without Caddy
  acme_email       = var.acme_email
  kiln_version     = var.kiln_version
  kiln_binary_url  = var.kiln_binary_url
  database_url     = local.database_url
  object_store_url = local.object_store_url
  admin_key        = var.admin_key
  settings         = local.kiln_settings
}

resource "aws_eip" "api" {
  count  = local.aws ? 1 : 0
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${var.name}-api" })
}

resource "aws_instance" "api" {
  count                  = local.aws ? 1 : 0
  ami                    = coalesce(var.api_ami_id, try(data.aws_ami.debian[0].id, null))
  instance_type          = var.api_instance_type
  subnet_id              = var.subnet_ids[0]
  vpc_security_group_ids = [aws_security_group.api[0].id]
  iam_instance_profile   = aws_iam_instance_profile.api[0].name
  key_name               = var.ssh_key_name
  user_data_base64       = module.host.user_data_base64

  # IMDSv2 only, one hop: containers on the host cannot reach the
  # instance's credentials or its user-data (which holds secrets).
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  root_block_device {
    volume_size = 20
    volume_type = "gp3"
    encrypted   = true
  }
  tags = merge(local.tags, { Name = "${var.name}-api" })
}

resource "aws_eip_association" "api" {
  count         = local.aws ? 1 : 0
  instance_id   = aws_instance.api[0].id
  allocation_id = aws_eip.api[0].id
}

# The GPU agent: kiln-gpu-agent's user-data on a GPU instance with the
# NVIDIA driver, on the same database and bucket.
module "gpu_agent" {
  count  = var.gpu_instance_type != null ? 1 : 0
  source = "../kiln-gpu-agent"

  kiln_version           = var.kiln_version
  kiln_binary_url        = var.kiln_binary_url
  database_url           = local.database_url
  object_store_url       = local.object_store_url
  models                 = var.gpu_models
  max_num_seqs           = var.gpu_max_num_seqs
  gpu_memory_utilization = var.gpu_memory_utilization
  hf_token               = var.hf_token
}

resource "aws_instance" "gpu" {
  count                  = local.aws && var.gpu_instance_type != null ? 1 : 0
  ami                    = coalesce(var.gpu_ami_id, try(data.aws_ami.gpu[0].id, null))
  instance_type          = var.gpu_instance_type
  subnet_id              = var.subnet_ids[0]
  vpc_security_group_ids = [aws_security_group.gpu[0].id]
  iam_instance_profile   = aws_iam_instance_profile.gpu[0].name
  key_name               = var.ssh_key_name
  user_data_base64       = module.gpu_agent[0].user_data_base64

  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  root_block_device {
    volume_size = 200 # vLLM, its wheels and the models' weights
    volume_type = "gp3"
    encrypted   = true
  }
  tags = merge(local.tags, { Name = "${var.name}-gpu" })
}
