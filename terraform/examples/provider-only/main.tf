# A kiln's keys, curators and webhook endpoint, managed with the kiln
# provider alone: no cloud provider, nothing but a running kiln.
#
#   export KILN_BASE_URL=http://127.0.0.1:4080 KILN_ADMIN_KEY=sk-kiln-admin-...
#   tofu init && tofu apply -var receiver_url=https://hooks.example.com/kiln

terraform {
  required_version = ">= 1.8"
  required_providers {
    kiln = {
      source  = "kiln/kiln"
      version = "~> 0.1"
    }
  }
}

# base_url and admin_key default to KILN_BASE_URL and KILN_ADMIN_KEY.
provider "kiln" {}

variable "project" {
  description = "The project the keys and the endpoint belong to."
  type        = string
  default     = "proj_default"
}

variable "receiver_url" {
  description = "Where kiln POSTs batch events. A private or loopback address needs KILN_WEBHOOK_ALLOW_PRIVATE on the server."
  type        = string
}

variable "webhook_rotation" {
  description = "Change it to rotate the endpoint's signing secret."
  type        = string
  default     = "1"
}

variable "curators" {
  description = "Curators of the curation workbench: name (or email) => role (curator or admin)."
  type        = map(string)
  default     = { "ada@example.com" = "curator" }
}

# The batch pipeline's key: files, uploads, batches and models.
resource "kiln_api_key" "pipeline" {
  project = var.project
  name    = "batch-pipeline"
  scopes  = ["api.batches"]
}

# A read-only key for dashboards.
resource "kiln_api_key" "dashboard" {
  project = var.project
  name    = "dashboard"
  scopes  = ["api.read"]
}

resource "kiln_webhook_endpoint" "batches" {
  project          = var.project
  url              = var.receiver_url
  name             = "batch events"
  event_types      = ["batch.completed", "batch.failed", "batch.expired"]
  rotation_trigger = var.webhook_rotation
}

resource "kiln_curator" "this" {
  for_each = var.curators
  name     = each.key
  role     = each.value
}

# What kiln serves, read with the dashboard's key.
data "kiln_models" "served" {
  api_key = kiln_api_key.dashboard.secret
}

data "kiln_conquest_types" "known" {
  api_key = kiln_api_key.dashboard.secret
}

output "pipeline_key" {
  description = "The pipeline's API key (sk-kiln-...)."
  value       = kiln_api_key.pipeline.secret
  sensitive   = true
}

output "dashboard_key" {
  description = "The dashboard's read-only API key (sk-kiln-...)."
  value       = kiln_api_key.dashboard.secret
  sensitive   = true
}

output "webhook_secret" {
  description = "The whsec_ secret the receiver verifies signatures with."
  value       = kiln_webhook_endpoint.batches.secret
  sensitive   = true
}

output "webhook_id" {
  description = "The webhook endpoint's ID, for its delivery log."
  value       = kiln_webhook_endpoint.batches.id
}

output "curator_keys" {
  description = "Each curator's key (ck-...), to hand to them once."
  value       = { for name, c in kiln_curator.this : name => c.key }
  sensitive   = true
}

output "models" {
  description = "The models kiln knows."
  value       = data.kiln_models.served.ids
}

output "conquest_types" {
  description = "The conquest types kiln serves."
  value       = data.kiln_conquest_types.known.ids
}
