locals {
  # Every path the user-data writes or the script uses is under prefix:
  # "" on a real host (root = "/"), the throwaway folder in tests.
  prefix = var.root == "/" ? "" : var.root

  # Whether a secret is set is no secret; its value stays sensitive.
  local_postgres = nonsensitive(var.database_url == null)
  local_minio    = nonsensitive(var.object_store_url == null)
  has_api_key    = nonsensitive(var.api_key != null)
  caddy          = var.tls_mode != "none"

  # With agent_cidr, the host's PostgreSQL and MinIO also listen on
  # private_host, for agents on other machines; else on loopback only.
  minio_host = var.agent_cidr == null ? "127.0.0.1" : coalesce(var.private_host, "127.0.0.1")
  pg_listen  = join(",", distinct(compact(["127.0.0.1", var.agent_cidr == null ? "" : coalesce(var.private_host, "127.0.0.1")])))

  public_host = regex("^https?://([^/:?#]+)", var.public_url)[0]
  kiln_addr   = local.caddy ? "127.0.0.1:${var.api_port}" : var.listen_addr

  kiln_url = coalesce(
    var.kiln_binary_url,
    var.kiln_version == null ? null : "https://github.com/kilnhq/kiln/releases/download/${var.kiln_version}/kiln-linux-${var.arch}",
    "unset",
  )

  paths = {
    kiln         = "${local.prefix}/usr/local/bin/kiln"
    kiln_admin   = "${local.prefix}/usr/local/bin/kiln-admin"
    minio        = "${local.prefix}/usr/local/bin/minio"
    setup        = "${local.prefix}/usr/local/sbin/kiln-setup"
    etc          = "${local.prefix}/etc/kiln"
    env          = "${local.prefix}/etc/kiln/kiln.env"
    local_env    = "${local.prefix}/etc/kiln/local.env"
    minio_env    = "${local.prefix}/etc/kiln/minio.env"
    provided_env = "${local.prefix}/etc/kiln/provided.env"
    tls_dir      = "${local.prefix}/etc/kiln/tls"
    caddyfile    = "${local.prefix}/etc/caddy/Caddyfile"
    units        = "${local.prefix}/etc/systemd/system"
    state        = "${local.prefix}/var/lib/kiln"
    minio_data   = "${local.prefix}/var/lib/kiln-minio"
    pg_data      = "${local.prefix}/var/lib/kiln/postgres"
    run          = "${local.prefix}/run/kiln"
    log          = "${local.prefix}/var/log/kiln"
  }

  # Written to /etc/kiln/kiln.env (0600, root), which the kiln unit reads
  # with EnvironmentFile=: secrets never appear in a unit file or on a
  # command line. The host's own Postgres and MinIO credentials are made on
  # the host and written to local.env beside it.
  env = merge(
    var.settings,
    {
      KILN_ADDR       = local.kiln_addr
      KILN_PUBLIC_URL = var.public_url
    },
    local.local_postgres ? {} : { KILN_DATABASE_URL = var.database_url },
    local.local_minio ? {} : { KILN_OBJECT_STORE = var.object_store_url },
    local.has_api_key ? { KILN_API_KEY = var.api_key } : {},
    nonsensitive(var.admin_key != null) ? { KILN_ADMIN_KEY = var.admin_key } : {},
    nonsensitive(var.metrics_token != null) ? { KILN_METRICS_TOKEN = var.metrics_token } : {},
    var.secret_settings,
  )

  # Double-quoted values with \ " $ ` escaped read the same to systemd's
  # EnvironmentFile= and to a POSIX shell's ".", which kiln-admin uses.
  env_file = join("", [
    for k in sort(keys(local.env)) :
    format("%s=\"%s\"\n", k, replace(replace(replace(replace(local.env[k], "\\", "\\\\"), "\"", "\\\""), "$", "\\$"), "`", "\\`"))
  ])

  # Passwords given as variables (for agents on other machines); the
  # start-up script reads them from this 0600 file, else makes its own.
  provided_env = join("", [for k, v in {
    POSTGRES_PASSWORD   = var.postgres_password
    MINIO_ROOT_PASSWORD = var.minio_root_password
  } : "${k}=\"${v}\"\n" if nonsensitive(v != null)])

  units = merge(
    {
      "kiln.service" = templatefile("${path.module}/templates/kiln.service.tftpl", {
        paths          = local.paths
        local_postgres = local.local_postgres
        local_minio    = local.local_minio
      })
    },
    local.local_minio ? {
      "kiln-minio.service" = templatefile("${path.module}/templates/kiln-minio.service.tftpl", {
        paths      = local.paths
        minio_port = var.minio_port
        minio_host = local.minio_host
      })
    } : {},
  )

  caddyfile = templatefile("${path.module}/templates/Caddyfile.tftpl", {
    public_host = local.public_host
    api_port    = var.api_port
    acme_email  = var.acme_email
    tls_mode    = var.tls_mode
    paths       = local.paths
  })

  kiln_admin = templatefile("${path.module}/templates/kiln-admin.sh.tftpl", { paths = local.paths })

  setup = templatefile("${path.module}/templates/kiln-setup.sh.tftpl", {
    paths            = local.paths
    prefix           = local.prefix
    service_manager  = var.service_manager
    install_packages = var.install_packages
    kiln_url         = local.kiln_url
    kiln_sha256      = var.kiln_sha256 == null ? "" : var.kiln_sha256
    minio_url        = var.minio_binary_url
    minio_sha256     = var.minio_sha256 == null ? "" : var.minio_sha256
    local_postgres   = local.local_postgres
    local_minio      = local.local_minio
    caddy            = local.caddy
    tls_mode         = var.tls_mode
    postgres_port    = var.postgres_port
    minio_port       = var.minio_port
    bucket           = var.bucket
    api_port         = local.caddy ? var.api_port : tonumber(regex(":([0-9]+)$", var.listen_addr)[0])
    units            = sort(keys(local.units))
    makes_first_key  = !local.has_api_key
    agent_cidr       = var.agent_cidr == null ? "" : var.agent_cidr
    minio_host       = local.minio_host
    pg_listen        = local.pg_listen
  })

  # Every file the user-data writes: path => content and mode. Secrets are
  # in files of mode 0600 (0640 for the TLS key, read by Caddy's group).
  files = merge(
    {
      (local.paths.env)        = { content = local.env_file, permissions = "0600" }
      (local.paths.setup)      = { content = local.setup, permissions = "0755" }
      (local.paths.kiln_admin) = { content = local.kiln_admin, permissions = "0755" }
    },
    nonsensitive(local.provided_env == "") ? {} : { (local.paths.provided_env) = { content = local.provided_env, permissions = "0600" } },
    { for name, content in local.units : "${local.paths.units}/${name}" => { content = content, permissions = "0644" } },
    local.caddy ? { (local.paths.caddyfile) = { content = local.caddyfile, permissions = "0644" } } : {},
    var.tls_mode == "certs" ? {
      "${local.paths.tls_dir}/cert.pem" = { content = coalesce(var.tls_certificate, "missing"), permissions = "0644" }
      "${local.paths.tls_dir}/key.pem"  = { content = coalesce(var.tls_private_key, "missing"), permissions = "0600" }
    } : {},
  )

  user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    files               = local.files
    setup               = local.paths.setup
    ssh_authorized_keys = var.ssh_authorized_keys
  })
}
