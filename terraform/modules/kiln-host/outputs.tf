output "user_data" {
  description = "The cloud-init user-data (#cloud-config) to give the VM. It holds the secret variables' values: keep it out of logs, and restrict who may read the instance's user-data."
  value       = local.user_data
  sensitive   = true

  precondition {
    condition     = var.kiln_binary_url != null || var.kiln_version != null
    error_message = "Set kiln_version or kiln_binary_url."
  }
  precondition {
    condition     = var.tls_mode != "certs" || (var.tls_certificate != null && var.tls_private_key != null)
    error_message = "tls_mode certs needs tls_certificate and tls_private_key."
  }
  precondition {
    condition     = var.service_manager == "direct" || var.postgres_port == 5432 || var.database_url != null
    error_message = "With service_manager systemd, the host's own PostgreSQL is Debian's cluster on port 5432."
  }
  precondition {
    condition     = var.tls_mode == "none" || startswith(var.public_url, "https://")
    error_message = "With Caddy (tls_mode caddy or certs), public_url must be https://."
  }
  precondition {
    condition     = var.agent_cidr == null || (var.private_host != null && (var.database_url != null || var.postgres_password != null) && (var.object_store_url != null || var.minio_root_password != null))
    error_message = "agent_cidr needs private_host, and postgres_password and minio_root_password for the host's own PostgreSQL and MinIO."
  }
  precondition {
    condition     = var.tls_mode != "none" || can(regex(":[0-9]+$", var.listen_addr))
    error_message = "listen_addr must end in :port."
  }
}

output "user_data_base64" {
  description = "user_data, base64-encoded, for VM resources that take it so (e.g. aws_instance's user_data_base64)."
  value       = base64encode(local.user_data)
  sensitive   = true
}

output "files" {
  description = "Every file the user-data writes, path => { content, permissions }: for images built without cloud-init, and for tests."
  value       = local.files
  sensitive   = true
}

output "setup_script_path" {
  description = "Path of the start-up script on the host (cloud-init's runcmd runs it once; running it again is safe)."
  value       = local.paths.setup
}

output "api_base_url" {
  description = "kiln's OpenAI-compatible base URL: give it to an OpenAI SDK as base_url, with a kiln API key."
  value       = "${var.public_url}/v1"
}

output "public_url" {
  description = "kiln's base URL as clients reach it (KILN_PUBLIC_URL)."
  value       = var.public_url
}

# not secret: a command that prints a key on the host, not a key.
output "first_key_command" {
  description = "What to run on the host (over SSH) to get an API key: kiln prints its first one once in its log; kiln-admin makes more."
  value       = local.has_api_key ? "sudo ${local.paths.kiln_admin} keys create --name NAME   # the api_key variable also works" : "sudo journalctl -u kiln --no-pager | grep -A3 'first API key'   # or: sudo ${local.paths.kiln_admin} keys create --name NAME"
}

# not secret: a command, not a key.
output "admin_key_command" {
  description = "What to run on the host to make an admin key for the Administration API (/v1/organization/...)."
  value       = "sudo ${local.paths.kiln_admin} admin-keys create --name ops"
}

output "kiln_admin_path" {
  description = "Path of kiln-admin on the host: the kiln command line with kiln serve's settings (keys, admin-keys, projects, doctor, migrate)."
  value       = local.paths.kiln_admin
}

output "agent_database_url" {
  description = "KILN_DATABASE_URL for kiln-gpu-agent on another machine: the host's own PostgreSQL at private_host (with agent_cidr), or database_url. Null without agent_cidr and database_url."
  value = var.database_url != null ? var.database_url : (
    var.agent_cidr == null || var.postgres_password == null ? null :
    "postgres://kiln:${coalesce(var.postgres_password, "-")}@${coalesce(var.private_host, "-")}:${var.postgres_port}/kiln?sslmode=disable"
  )
  sensitive = true
}

output "agent_object_store_url" {
  description = "KILN_OBJECT_STORE for kiln-gpu-agent on another machine: the host's own MinIO at private_host (with agent_cidr), or object_store_url. Null without agent_cidr and object_store_url."
  value = var.object_store_url != null ? var.object_store_url : (
    var.agent_cidr == null || var.minio_root_password == null ? null :
    "s3://kiln-agent:${coalesce(var.minio_root_password, "-")}@${var.bucket}?endpoint=${coalesce(var.private_host, "-")}:${var.minio_port}&region=us-east-1&secure=false"
  )
  sensitive = true
}
