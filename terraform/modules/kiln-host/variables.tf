variable "public_url" {
  description = "kiln's base URL as clients reach it, without /v1 (e.g. https://kiln.example.com). With tls_mode caddy or certs, Caddy serves this host name."
  type        = string
  validation {
    condition     = can(regex("^https?://[^/?#]+$", var.public_url))
    error_message = "public_url must be http(s)://host[:port], without a path."
  }
}

variable "kiln_version" {
  description = "kiln release to install (e.g. v1.4.0), downloaded from the project's GitHub releases as kiln-linux-<arch>. Ignored when kiln_binary_url is set."
  type        = string
  default     = null
}

variable "kiln_binary_url" {
  description = "URL of the kiln binary to install (https://, or file:// for a binary already on the machine). Takes precedence over kiln_version."
  type        = string
  default     = null
}

variable "kiln_sha256" {
  description = "SHA-256 of the kiln binary; when set, the start-up script refuses a download that does not match."
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

variable "database_url" {
  description = "postgres:// URL of an external PostgreSQL database for kiln. Null installs PostgreSQL on the host (Debian's package) with a password generated there, which never leaves the host."
  type        = string
  default     = null
  sensitive   = true
}

variable "object_store_url" {
  description = "s3:// URL of an external bucket (KILN_OBJECT_STORE, e.g. s3://kiln-bucket?region=eu-west-1, with or without KEY:SECRET@). Null runs MinIO on the host, with credentials generated there."
  type        = string
  default     = null
  sensitive   = true
}

variable "bucket" {
  description = "Bucket name kiln uses on the host's own MinIO (kiln creates it at start). Unused with object_store_url."
  type        = string
  default     = "kiln"
}

variable "minio_binary_url" {
  description = "URL of the MinIO server binary for the host's own MinIO (https:// or file://). MinIO is AGPLv3; kiln only runs it as a separate process."
  type        = string
  default     = "https://dl.min.io/server/minio/release/linux-amd64/minio"
}

variable "minio_sha256" {
  description = "SHA-256 of the MinIO binary; when set, a download that does not match is refused."
  type        = string
  default     = null
}

variable "tls_mode" {
  description = "How HTTPS is served: caddy (Debian's Caddy as reverse proxy, certificates from Let's Encrypt for public_url's host), certs (Caddy with the certificate passed in tls_certificate and tls_private_key), or none (kiln listens on listen_addr; put your own proxy or load balancer in front)."
  type        = string
  default     = "caddy"
  validation {
    condition     = contains(["caddy", "certs", "none"], var.tls_mode)
    error_message = "tls_mode must be caddy, certs or none."
  }
}

variable "acme_email" {
  description = "E-mail address Caddy gives the ACME CA (Let's Encrypt) with tls_mode caddy. Null: none."
  type        = string
  default     = null
}

variable "tls_certificate" {
  description = "PEM certificate chain for public_url's host, with tls_mode certs."
  type        = string
  default     = null
}

variable "tls_private_key" {
  description = "PEM private key of tls_certificate, with tls_mode certs. Written 0640 root:caddy on the host."
  type        = string
  default     = null
  sensitive   = true
}

variable "listen_addr" {
  description = "kiln's listen address (KILN_ADDR) with tls_mode none. With Caddy, kiln listens on 127.0.0.1:api_port only."
  type        = string
  default     = "0.0.0.0:4080"
}

variable "api_port" {
  description = "Loopback port kiln listens on behind Caddy (and the port the start-up script checks)."
  type        = number
  default     = 4080
}

variable "api_key" {
  description = "KILN_API_KEY: a key kiln accepts besides its stored ones. When set, kiln makes no first key. Null: make keys with kiln-admin on the host."
  type        = string
  default     = null
  sensitive   = true
}

variable "admin_key" {
  description = "KILN_ADMIN_KEY: an admin key for /v1/organization/... (it must differ from api_key). Null: make admin keys with kiln-admin on the host."
  type        = string
  default     = null
  sensitive   = true
}

variable "metrics_token" {
  description = "KILN_METRICS_TOKEN: bearer token that /metrics then requires. Null leaves /metrics open (keep it off the public network: Caddy does not proxy it)."
  type        = string
  default     = null
  sensitive   = true
}

variable "settings" {
  description = "Other kiln settings as KILN_* environment variables (README, Configuration), e.g. { KILN_INBOX_PREFIX = \"inbox/\" }. Not for secrets: use the sensitive variables."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.settings) : can(regex("^KILN_[A-Z0-9_]+$", k))])
    error_message = "settings keys must be KILN_* variable names."
  }
}

variable "secret_settings" {
  description = "Secret kiln settings as KILN_* environment variables (e.g. KILN_SIGNING_KEY); written only to the 0600 environment file."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "install_packages" {
  description = "Whether the start-up script installs what it needs with apt-get (curl, PostgreSQL, Caddy). False when the image has them."
  type        = bool
  default     = true
}

variable "service_manager" {
  description = "How the start-up script runs the services: systemd (units, enabled and started with systemctl) or direct (started as background processes with pid files under root; for tests and containers without systemd as PID 1)."
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

variable "postgres_port" {
  description = "Port of the host's own PostgreSQL. With service_manager systemd it is Debian's cluster, on 5432."
  type        = number
  default     = 5432
}

variable "minio_port" {
  description = "Loopback port of the host's own MinIO (its console is off)."
  type        = number
  default     = 9000
}

# not secret: public keys.
variable "ssh_authorized_keys" {
  description = "SSH public keys for the image's default user, added by cloud-init (to run kiln-admin on the host)."
  type        = list(string)
  default     = []
}

variable "agent_cidr" {
  description = "Network (CIDR) of GPU agents on other machines (kiln-gpu-agent): the host's own PostgreSQL and MinIO then also listen on private_host and let that network in, with postgres_password and minio_root_password. Null: both listen on loopback only. Keep them off the public network (firewall or security group)."
  type        = string
  default     = null
  validation {
    condition     = var.agent_cidr == null || can(cidrhost(var.agent_cidr, 0))
    error_message = "agent_cidr must be a CIDR such as 10.0.0.0/16."
  }
}

variable "private_host" {
  description = "The host's private address (IP or name) at which agents reach it: with agent_cidr, PostgreSQL and MinIO listen there, and the agent_database_url and agent_object_store_url outputs point there."
  type        = string
  default     = null
}

variable "postgres_password" {
  description = "Password of the kiln role in the host's own PostgreSQL. Null: made on the host, never leaving it (then only kiln on the host can use the database). Required with agent_cidr."
  type        = string
  default     = null
  sensitive   = true
  validation {
    condition     = var.postgres_password == null || can(regex("^[A-Za-z0-9._~-]{16,}$", var.postgres_password))
    error_message = "postgres_password must be 16 or more letters, digits or . _ ~ - (it goes into a URL)."
  }
}

variable "minio_root_password" {
  description = "MinIO's root password on the host's own MinIO (the user is kiln-agent). Null: made on the host. Required with agent_cidr."
  type        = string
  default     = null
  sensitive   = true
  validation {
    condition     = var.minio_root_password == null || can(regex("^[A-Za-z0-9._~-]{16,}$", var.minio_root_password))
    error_message = "minio_root_password must be 16 or more letters, digits or . _ ~ - (it goes into a URL)."
  }
}
