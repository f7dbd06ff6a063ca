# kiln on two machines: a box with PostgreSQL, MinIO and kiln serve, and a
# GPU machine with vLLM and kiln agent on the box's database and bucket over
# the private network. No provider: this renders both user-data documents;
# give them to the VMs of your choice (see README.md).

terraform {
  required_version = ">= 1.6.0"
}

variable "public_url" {
  description = "kiln's base URL, e.g. https://kiln.example.com."
  type        = string
}

variable "kiln_version" {
  description = "kiln release both machines install, e.g. v1.4.0."
  type        = string
}

variable "box_private_ip" {
  description = "The box's address on the private network both machines share (reserve it first)."
  type        = string
}

variable "private_cidr" {
  description = "The private network the GPU machine is on; the box's PostgreSQL and MinIO let it in."
  type        = string
}

variable "postgres_password" {
  description = "Password of the kiln database role (16+ letters, digits, . _ ~ -), e.g. from openssl rand -hex 24."
  type        = string
  sensitive   = true
}

variable "minio_root_password" {
  description = "MinIO's root password on the box (16+ letters, digits, . _ ~ -)."
  type        = string
  sensitive   = true
}

variable "models" {
  description = "Models vLLM may load on the GPU machine."
  type        = list(string)
  default     = ["Qwen/Qwen2.5-3B-Instruct"]
}

variable "hf_token" {
  description = "Hugging Face token for gated models. Null: public models only."
  type        = string
  default     = null
  sensitive   = true
}

module "box" {
  source = "../../modules/kiln-host"

  public_url          = var.public_url
  kiln_version        = var.kiln_version
  agent_cidr          = var.private_cidr
  private_host        = var.box_private_ip
  postgres_password   = var.postgres_password
  minio_root_password = var.minio_root_password
}

module "gpu" {
  source = "../../modules/kiln-gpu-agent"

  kiln_version     = var.kiln_version
  database_url     = module.box.agent_database_url
  object_store_url = module.box.agent_object_store_url
  models           = var.models
  max_num_seqs     = 128
  hf_token         = var.hf_token
}

output "box_user_data" {
  description = "The box's cloud-init user-data: tofu output -raw box_user_data > box.yaml."
  value       = module.box.user_data
  sensitive   = true
}

output "gpu_user_data" {
  description = "The GPU machine's cloud-init user-data: tofu output -raw gpu_user_data > gpu.yaml."
  value       = module.gpu.user_data
  sensitive   = true
}

output "api_base_url" {
  description = "kiln's OpenAI-compatible base URL."
  value       = module.box.api_base_url
}

# not secret: a command that prints a key on the box, not a key.
output "first_key_command" {
  description = "Run this on the box (over SSH) for kiln's first API key."
  value       = module.box.first_key_command
}
