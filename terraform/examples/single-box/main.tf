# kiln on one Linux box: PostgreSQL, MinIO and kiln serve behind Caddy, from
# cloud-init user-data. No provider: this renders the user-data; give it to
# the VM of your choice (see README.md).

terraform {
  required_version = ">= 1.6.0"
}

variable "public_url" {
  description = "kiln's base URL, e.g. https://kiln.example.com (its DNS name must point at the box for Let's Encrypt)."
  type        = string
}

variable "kiln_version" {
  description = "kiln release to install, e.g. v1.4.0."
  type        = string
  default     = null
}

variable "kiln_binary_url" {
  description = "URL of a kiln linux binary, in place of a release."
  type        = string
  default     = null
}

variable "acme_email" {
  description = "E-mail address for Let's Encrypt. Null: none."
  type        = string
  default     = null
}

# not secret: public keys.
variable "ssh_authorized_keys" {
  description = "SSH public keys for the box's default user."
  type        = list(string)
  default     = []
}

module "kiln" {
  source = "../../modules/kiln-host"

  public_url          = var.public_url
  kiln_version        = var.kiln_version
  kiln_binary_url     = var.kiln_binary_url
  acme_email          = var.acme_email
  ssh_authorized_keys = var.ssh_authorized_keys
}

output "user_data" {
  description = "The box's cloud-init user-data: tofu output -raw user_data > user-data.yaml."
  value       = module.kiln.user_data
  sensitive   = true
}

output "api_base_url" {
  description = "kiln's OpenAI-compatible base URL."
  value       = module.kiln.api_base_url
}

# not secret: a command that prints a key on the box, not a key.
output "first_key_command" {
  description = "Run this on the box (over SSH) for kiln's first API key."
  value       = module.kiln.first_key_command
}
