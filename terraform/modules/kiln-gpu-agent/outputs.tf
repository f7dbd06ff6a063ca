output "user_data" {
  description = "The cloud-init user-data (#cloud-config) for the GPU VM. It holds the database URL and other secrets: keep it out of logs."
  value       = local.user_data
  sensitive   = true

  precondition {
    condition     = var.kiln_binary_url != null || var.kiln_version != null
    error_message = "Set kiln_version or kiln_binary_url."
  }
  precondition {
    condition     = var.engine != "command" || var.engine_command != null
    error_message = "engine command needs engine_command."
  }
  precondition {
    condition     = can(regex(":[0-9]+$", var.metrics_addr))
    error_message = "metrics_addr must end in :port."
  }
}

output "user_data_base64" {
  description = "user_data, base64-encoded, for VM resources that take it so."
  value       = base64encode(local.user_data)
  sensitive   = true
}

output "files" {
  description = "Every file the user-data writes, path => { content, permissions }: for images built without cloud-init, and for tests."
  value       = local.files
  sensitive   = true
}

output "engine_command" {
  description = "The engine command template kiln agent runs per model (KILN_ENGINE_COMMAND)."
  value       = local.engine_command
}

output "models" {
  description = "The models the engine may load (KILN_ENGINE_MODELS)."
  value       = var.models
}

output "setup_script_path" {
  description = "Path of the start-up script on the host (cloud-init's runcmd runs it once; running it again is safe)."
  value       = local.paths.setup
}

output "status_command" {
  description = "What to run on the GPU host to see the agent and its engine."
  value       = "sudo systemctl status kiln-agent; sudo journalctl -u kiln-agent -f; nvidia-smi"
}
