variable "name" {
  description = "Prefix of every resource's name (bucket, queues, database, function, roles)."
  type        = string
  default     = "kiln"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "bucket_name" {
  description = "Name of kiln's S3 bucket. Null: <name>-<account>-<region>."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let tofu destroy delete the bucket with its objects and the database without a final snapshot (for trial stacks)."
  type        = bool
  default     = false
}

variable "inbox_prefix" {
  description = "Bucket prefix whose new objects become kiln files (and batches, with a sidecar): S3 notifies the inbox queue of them (KILN_INBOX_PREFIX)."
  type        = string
  default     = "inbox/"
}

variable "inbox_max_receive_count" {
  description = "Receives of an inbox message before SQS moves it to the dead-letter queue (the redrive policy's maxReceiveCount)."
  type        = number
  default     = 5
}

variable "vpc_id" {
  description = "VPC of the stack. Unused with localstack."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Public subnets for the API instance (and the GPU instance); the API instance gets an Elastic IP."
  type        = list(string)
  default     = []
}

variable "private_subnet_ids" {
  description = "Subnets (at least two AZs) for the database and the Lambda function. Empty: subnet_ids. The Lambda function reaches S3 through a NAT gateway or the S3 gateway endpoint made for s3_endpoint_route_table_ids."
  type        = list(string)
  default     = []
}

variable "s3_endpoint_route_table_ids" {
  description = "Route tables to give an S3 gateway endpoint (so the Lambda function reaches S3 without a NAT gateway). Empty: none is made."
  type        = list(string)
  default     = []
}

variable "api_cidrs" {
  description = "Who may reach the API (HTTPS 443, and 80 for Let's Encrypt's HTTP challenge and the redirect)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "admin_cidrs" {
  description = "Who may SSH to the instances (to run kiln-admin). Empty: no SSH port is open."
  type        = list(string)
  default     = []
}

# not secret: the name of an EC2 key pair, not a key.
variable "ssh_key_name" {
  description = "EC2 key pair for SSH to the instances. Null: none."
  type        = string
  default     = null
}

variable "public_url" {
  description = "kiln's public base URL, e.g. https://kiln.example.com: point its host name's DNS at the api_public_ip output; Caddy gets its certificate from Let's Encrypt."
  type        = string
}

variable "acme_email" {
  description = "E-mail address for Let's Encrypt. Null: none."
  type        = string
  default     = null
}

variable "kiln_version" {
  description = "kiln release the instances install (e.g. v1.4.0). Ignored when kiln_binary_url is set."
  type        = string
  default     = null
}

variable "kiln_binary_url" {
  description = "URL of the kiln linux binary the instances install; takes precedence over kiln_version."
  type        = string
  default     = null
}

variable "lambda_zip" {
  description = "Path of the Lambda bundle `make lambda` builds (bin/kiln-lambda-arm64.zip or -amd64.zip). Null: no Lambda; kiln serve runs every function itself."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Architecture of lambda_zip: arm64 or x86_64."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "db_password" {
  description = "Password of the database's kiln user (RDS master user); it lands in the state, the instances' user-data and the function's environment, so keep those private."
  type        = string
  sensitive   = true
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.small"
}

variable "db_engine_version" {
  description = "RDS PostgreSQL major version."
  type        = string
  default     = "16"
}

variable "api_instance_type" {
  description = "EC2 instance type of kiln serve."
  type        = string
  default     = "t3.small"
}

variable "api_ami_id" {
  description = "AMI of the API instance. Null: the newest Debian 12 (amd64) AMI."
  type        = string
  default     = null
}

variable "gpu_instance_type" {
  description = "EC2 instance type of the GPU agent, e.g. g6.xlarge (NVIDIA L4, 24 GB) or g5.xlarge (A10G, 24 GB). Null: no GPU instance."
  type        = string
  default     = null
}

variable "gpu_ami_id" {
  description = "AMI of the GPU instance: it must have the NVIDIA driver. Null: the newest AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)."
  type        = string
  default     = null
}

variable "gpu_models" {
  description = "Models the GPU agent's vLLM may load."
  type        = list(string)
  default     = ["Qwen/Qwen2.5-3B-Instruct"]
}

variable "gpu_max_num_seqs" {
  description = "vLLM's max_num_seqs on the GPU instance (and the agent's concurrency)."
  type        = number
  default     = 256
}

variable "gpu_memory_utilization" {
  description = "vLLM's --gpu-memory-utilization on the GPU instance."
  type        = number
  default     = 0.9
}

variable "hf_token" {
  description = "Hugging Face token for gated models, for the GPU instance. Null: public models only."
  type        = string
  default     = null
  sensitive   = true
}

variable "admin_key" {
  description = "KILN_ADMIN_KEY for the Administration API. Null: make admin keys with kiln-admin on the instance."
  type        = string
  default     = null
  sensitive   = true
}

variable "localstack" {
  description = "Build the stack on LocalStack: kiln's S3, SQS and Lambda endpoints become localstack_endpoint, and the parts LocalStack's free edition does not emulate (RDS, EC2) are left out: run kiln serve yourself with the local_kiln_env output and database_url. The provider's endpoints are the caller's (see examples/aws)."
  type        = bool
  default     = false
}

variable "localstack_endpoint" {
  description = "LocalStack's URL, with localstack."
  type        = string
  default     = "http://localhost:4566"
}

variable "database_url" {
  description = "With localstack: the postgres:// URL of the database kiln and the function use (RDS is not made). Ignored otherwise."
  type        = string
  default     = null
  sensitive   = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
