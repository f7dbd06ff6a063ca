variable "database_url" {
  description = "postgres:// URL of the stack's database (kiln serve's KILN_DATABASE_URL); the agent claims shards there."
  type        = string
  sensitive   = true
}

variable "object_store_url" {
  description = "s3:// URL of the stack's bucket (kiln serve's KILN_OBJECT_STORE); the agent writes result chunks there. Without KEY:SECRET@, the AWS SDK's chain (e.g. the instance profile) gives the credentials."
  type        = string
  sensitive   = true
}

variable "models" {
  description = "The models the engine may load (KILN_ENGINE_MODELS), as vLLM names them, e.g. [\"Qwen/Qwen2.5-3B-Instruct\"]. The agent loads one at a time, the one with work, and switches when another's work waits too long."
  type        = list(string)
  validation {
    condition     = length(var.models) > 0 && alltrue([for m in var.models : can(regex("^[^,[:space:]'\"]+$", m))])
    error_message = "models must be a non-empty list of names without commas, spaces or quotes."
  }
}

variable "max_num_seqs" {
  description = "vLLM's --max-num-seqs, and the most requests the agent keeps in flight (KILN_AGENT_CONCURRENCY). kiln bench finds a good value for a card and model."
  type        = number
  default     = 256
  validation {
    condition     = var.max_num_seqs >= 1 && floor(var.max_num_seqs) == var.max_num_seqs
    error_message = "max_num_seqs must be a positive whole number."
  }
}

variable "gpu_memory_utilization" {
  description = "vLLM's --gpu-memory-utilization: the fraction of the card's memory the engine may take (weights, KV cache)."
  type        = number
  default     = 0.9
  validation {
    condition     = var.gpu_memory_utilization > 0 && var.gpu_memory_utilization <= 1
    error_message = "gpu_memory_utilization must be in (0, 1]."
  }
}

variable "engine" {
  description = "How vLLM runs: venv (pip-installed into a virtualenv on the host), container (Docker with the NVIDIA Container Toolkit, image vllm_image), or command (engine_command as given)."
  type        = string
  default     = "venv"
  validation {
    condition     = contains(["venv", "container", "command"], var.engine)
    error_message = "engine must be venv, container or command."
  }
}

variable "vllm_version" {
  description = "vLLM version pip installs with engine venv (kiln speaks vLLM's OpenAI server of 0.12 and later)."
  type        = string
  default     = "0.12.0"
}

variable "vllm_image" {
  description = "vLLM's OpenAI server image with engine container."
  type        = string
  default     = "vllm/vllm-openai:v0.12.0"
}

variable "vllm_extra_args" {
  description = "More vLLM arguments, appended to every vllm serve (e.g. \"--max-model-len 8192\"). Split as a shell would, without one: no variables or globs."
  type        = string
  default     = ""
}

variable "engine_command" {
  description = "With engine command: kiln's KILN_ENGINE_COMMAND template ({{.Model}}, {{.Host}}, {{.Port}}, {{.MaxNumSeqs}}), e.g. to run kiln sim in place of vLLM."
  type        = string
  default     = null
}

variable "sleep_mode" {
  description = "Switch models with vLLM's sleep mode (KILN_ENGINE_SLEEP_MODE) instead of a restart."
  type        = bool
  default     = false
}

variable "hf_token" {
  description = "Hugging Face token for gated models (HF_TOKEN), written only to the 0600 environment file. Null: public models only."
  type        = string
  default     = null
  sensitive   = true
}

variable "metrics_addr" {
  description = "Where kiln agent serves /metrics and /healthz (KILN_METRICS_ADDR). Keep it private, or set a metrics_token."
  type        = string
  default     = "127.0.0.1:9464"
}

variable "metrics_token" {
  description = "KILN_METRICS_TOKEN: bearer token that /metrics then requires. Null: open."
  type        = string
  default     = null
  sensitive   = true
}

variable "settings" {
  description = "Other kiln agent settings as KILN_* environment variables (e.g. KILN_STARVATION_BOUND). Not for secrets: use secret_settings."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.settings) : can(regex("^KILN_[A-Z0-9_]+$", k))])
    error_message = "settings keys must be KILN_* variable names."
  }
}

variable "secret_settings" {
  description = "Secret environment variables of kiln agent and its engine, written only to the 0600 environment file."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "kiln_version" {
  description = "kiln release to install (e.g. v1.4.0), downloaded from the project's GitHub releases as kiln-linux-<arch>. Ignored when kiln_binary_url is set."
  type        = string
  default     = null
}

variable "kiln_binary_url" {
  description = "URL of the kiln binary (https://, or file:// for one already on the machine). Takes precedence over kiln_version."
  type        = string
  default     = null
}

variable "kiln_sha256" {
  description = "SHA-256 of the kiln binary; when set, a download that does not match is refused."
  type        = string
  default     = null
}

variable "arch" {
  description = "CPU architecture of the host, for release downloads: amd64 or arm64."
  type        = string
  default     = "amd64"
  validation {
    condition     = contains(["amd64", "arm64"], var.arch)
    error_message = "arch must be amd64 or arm64."
  }
}

variable "require_gpu" {
  description = "Whether the start-up script stops with an error when nvidia-smi finds no working NVIDIA driver and GPU (the driver is a prerequisite: see the README)."
  type        = bool
  default     = true
}

variable "install_packages" {
  description = "Whether the start-up script installs what it needs with apt-get (curl; python3-venv for engine venv). Docker and the NVIDIA Container Toolkit are prerequisites of engine container."
  type        = bool
  default     = true
}

variable "service_manager" {
  description = "How the start-up script runs kiln agent: systemd (a unit with Restart=always) or direct (a background process with a pid file under root; for tests)."
  type        = string
  default     = "systemd"
  validation {
    condition     = contains(["systemd", "direct"], var.service_manager)
    error_message = "service_manager must be systemd or direct."
  }
}

variable "root" {
  description = "Folder every file the user-data writes and the start-up script uses is put under: / on a real host; a throwaway folder in tests."
  type        = string
  default     = "/"
  validation {
    condition     = can(regex("^/([^[:space:]'\"\\\\$`]*[^/])?$", var.root))
    error_message = "root must be an absolute path without a trailing slash, spaces, quotes, backslashes, $ or backticks."
  }
}

# not secret: public keys.
variable "ssh_authorized_keys" {
  description = "SSH public keys for the image's default user, added by cloud-init."
  type        = list(string)
  default     = []
}
