# kiln on AWS: S3 (with the inbox's notifications through SQS and a DLQ),
# RDS PostgreSQL, kiln serve on EC2 behind Caddy, the functions on Lambda,
# and optionally a GPU instance with vLLM and kiln agent. With
# -var localstack=true, everything the free LocalStack emulates (S3, SQS,
# Lambda, IAM) is made there instead (see README.md).

terraform {
  required_version = ">= 1.6.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "public_url" {
  description = "kiln's base URL, e.g. https://kiln.example.com."
  type        = string
}

variable "kiln_version" {
  description = "kiln release the instances install."
  type        = string
  default     = null
}

variable "db_password" {
  description = "Password of the RDS kiln user (e.g. openssl rand -hex 24)."
  type        = string
  sensitive   = true
}

variable "gpu_instance_type" {
  description = "GPU instance type (g6.xlarge: NVIDIA L4; g5.xlarge: A10G). Null: none."
  type        = string
  default     = null
}

variable "localstack" {
  description = "Make the stack on LocalStack at localstack_endpoint (S3, SQS, Lambda, IAM only)."
  type        = bool
  default     = false
}

variable "localstack_endpoint" {
  description = "LocalStack's URL."
  type        = string
  default     = "http://localhost:4566"
}

variable "database_url" {
  description = "With localstack: the postgres:// URL kiln and the function use."
  type        = string
  default     = null
  sensitive   = true
}

provider "aws" {
  region = var.region

  # LocalStack: fake credentials, no account look-ups, path-style S3, and
  # every endpoint the stack uses pointed at it (null: AWS's own).
  access_key                  = var.localstack ? "test" : null
  secret_key                  = var.localstack ? "test" : null
  skip_credentials_validation = var.localstack
  skip_metadata_api_check     = var.localstack
  skip_requesting_account_id  = var.localstack
  s3_use_path_style           = var.localstack

  endpoints {
    s3     = var.localstack ? var.localstack_endpoint : null
    sqs    = var.localstack ? var.localstack_endpoint : null
    lambda = var.localstack ? var.localstack_endpoint : null
    iam    = var.localstack ? var.localstack_endpoint : null
    sts    = var.localstack ? var.localstack_endpoint : null
    logs   = var.localstack ? var.localstack_endpoint : null
    ec2    = var.localstack ? var.localstack_endpoint : null
  }
}

# The default VPC and its subnets; use your own VPC's in production.
data "aws_vpc" "default" {
  count   = var.localstack ? 0 : 1
  default = true
}

data "aws_subnets" "default" {
  count = var.localstack ? 0 : 1
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }
}

data "aws_route_tables" "default" {
  count  = var.localstack ? 0 : 1
  vpc_id = data.aws_vpc.default[0].id
}

module "kiln" {
  source = "../../modules/kiln-aws"

  public_url                  = var.public_url
  kiln_version                = var.kiln_version
  db_password                 = var.db_password
  vpc_id                      = var.localstack ? null : data.aws_vpc.default[0].id
  subnet_ids                  = var.localstack ? [] : data.aws_subnets.default[0].ids
  s3_endpoint_route_table_ids = var.localstack ? [] : data.aws_route_tables.default[0].ids
  lambda_zip                  = "${path.root}/../../../bin/kiln-lambda-arm64.zip"
  gpu_instance_type           = var.gpu_instance_type
  force_destroy               = true # a trial stack; false in production
  localstack                  = var.localstack
  localstack_endpoint         = var.localstack_endpoint
  database_url                = var.database_url
}

output "api_base_url" {
  description = "kiln's OpenAI-compatible base URL."
  value       = module.kiln.api_base_url
}

output "api_public_ip" {
  description = "Point public_url's DNS name at this address."
  value       = module.kiln.api_public_ip
}

output "inbox_upload_command" {
  description = "Drop a file into the inbox."
  value       = module.kiln.inbox_upload_command
}

output "inbox_dlq_url" {
  description = "The inbox's dead-letter queue."
  value       = module.kiln.inbox_dlq_url
}

# not secret: a command that prints a key on the instance, not a key.
output "first_key_command" {
  description = "Run this on the API instance for kiln's first API key."
  value       = module.kiln.first_key_command
}

output "local_kiln_env" {
  description = "With localstack: the environment for kiln serve on this machine."
  value       = module.kiln.local_kiln_env
  sensitive   = true
}
