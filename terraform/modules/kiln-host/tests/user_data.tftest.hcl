# tofu test: the user-data kiln-host renders for several input sets. Run from
# the module's folder: tofu init && tofu test (no provider is needed).

variables {
  public_url   = "https://kiln.example.com"
  kiln_version = "v1.2.3"
}

run "local_stack_behind_caddy" {
  command = plan

  assert {
    condition     = startswith(output.user_data, "#cloud-config\n")
    error_message = "user_data is not a #cloud-config document."
  }
  assert {
    condition     = output.api_base_url == "https://kiln.example.com/v1"
    error_message = "api_base_url is not public_url/v1."
  }
  assert {
    condition     = alltrue([for p in ["/etc/systemd/system/kiln.service", "/etc/systemd/system/kiln-minio.service", "/etc/caddy/Caddyfile", "/etc/kiln/kiln.env", "/usr/local/sbin/kiln-setup", "/usr/local/bin/kiln-admin"] : contains(keys(output.files), p)])
    error_message = "a file of the local stack is missing."
  }
  assert {
    condition     = output.files["/etc/kiln/kiln.env"].permissions == "0600"
    error_message = "the environment file is not 0600."
  }
  assert {
    condition     = strcontains(output.files["/etc/kiln/kiln.env"].content, "KILN_ADDR=\"127.0.0.1:4080\"\n")
    error_message = "behind Caddy, kiln must listen on loopback only."
  }
  assert {
    condition     = !strcontains(output.files["/etc/kiln/kiln.env"].content, "KILN_DATABASE_URL")
    error_message = "with the host's own Postgres, the database URL is made on the host, not in the user-data."
  }
  assert {
    condition     = strcontains(output.files["/usr/local/sbin/kiln-setup"].content, "https://github.com/kilnhq/kiln/releases/download/v1.2.3/kiln-linux-amd64")
    error_message = "kiln_version does not pick the release binary."
  }
  assert {
    condition     = strcontains(output.files["/etc/caddy/Caddyfile"].content, "kiln.example.com {")
    error_message = "Caddy does not serve public_url's host."
  }
  assert {
    condition     = strcontains(output.files["/etc/systemd/system/kiln.service"].content, "EnvironmentFile=/etc/kiln/kiln.env")
    error_message = "the unit does not read the environment file."
  }
  assert {
    condition     = strcontains(output.first_key_command, "journalctl -u kiln")
    error_message = "without api_key, the first key is in kiln's log."
  }
}

run "external_database_and_bucket_without_tls" {
  command = plan

  variables {
    public_url       = "http://10.0.0.5:4080"
    tls_mode         = "none"
    database_url     = "postgres://kiln:pw@db.internal:5432/kiln"
    object_store_url = "s3://kiln-bucket?region=eu-west-1"
    api_key          = "sk-kiln-abc"
    settings         = { KILN_INBOX_PREFIX = "inbox/" }
  }

  assert {
    condition     = !contains(keys(output.files), "/etc/systemd/system/kiln-minio.service") && !contains(keys(output.files), "/etc/caddy/Caddyfile")
    error_message = "with an external bucket and no TLS, neither MinIO nor Caddy is installed."
  }
  assert {
    condition     = strcontains(output.files["/etc/kiln/kiln.env"].content, "KILN_DATABASE_URL=\"postgres://kiln:pw@db.internal:5432/kiln\"\n")
    error_message = "the external database URL is not in the environment file."
  }
  assert {
    condition     = strcontains(output.files["/etc/kiln/kiln.env"].content, "KILN_ADDR=\"0.0.0.0:4080\"\n") && strcontains(output.files["/etc/kiln/kiln.env"].content, "KILN_INBOX_PREFIX=\"inbox/\"\n")
    error_message = "listen_addr or settings are not in the environment file."
  }
  assert {
    condition     = !strcontains(output.files["/etc/systemd/system/kiln.service"].content, "postgres://") && !strcontains(output.files["/etc/systemd/system/kiln.service"].content, "sk-kiln-abc")
    error_message = "a secret is in the unit file."
  }
  assert {
    condition     = !strcontains(output.files["/usr/local/sbin/kiln-setup"].content, "PostgreSQL on this host") && !strcontains(output.files["/usr/local/sbin/kiln-setup"].content, "MinIO on this host")
    error_message = "the start-up script still sets up a local Postgres or MinIO."
  }
}

run "certs_passed_in" {
  command = plan

  variables {
    tls_mode        = "certs"
    tls_certificate = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
    tls_private_key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
  }

  assert {
    condition     = output.files["/etc/kiln/tls/key.pem"].permissions == "0600"
    error_message = "the TLS key is not 0600."
  }
  assert {
    condition     = strcontains(output.files["/etc/caddy/Caddyfile"].content, "tls /etc/kiln/tls/cert.pem /etc/kiln/tls/key.pem")
    error_message = "Caddy does not use the certificate passed in."
  }
}

run "secrets_are_escaped_for_systemd_and_sh" {
  command = plan

  variables {
    admin_key = "a\"b$c`d\\e"
  }

  assert {
    condition     = strcontains(output.files["/etc/kiln/kiln.env"].content, "KILN_ADMIN_KEY=\"a\\\"b\\$c\\`d\\\\e\"\n")
    error_message = "a secret's \\ \" $ ` are not escaped in the environment file."
  }
}

run "throwaway_root_and_direct_mode" {
  command = plan

  variables {
    root             = "/tmp/kiln-root"
    service_manager  = "direct"
    install_packages = false
    tls_mode         = "none"
    public_url       = "http://127.0.0.1:4080"
    listen_addr      = "127.0.0.1:4080"
    postgres_port    = 15432
  }

  assert {
    condition     = alltrue([for p in keys(output.files) : startswith(p, "/tmp/kiln-root/")])
    error_message = "a file is written outside root."
  }
  assert {
    condition     = output.setup_script_path == "/tmp/kiln-root/usr/local/sbin/kiln-setup"
    error_message = "the start-up script is not under root."
  }
  assert {
    condition     = !strcontains(output.files["/tmp/kiln-root/usr/local/sbin/kiln-setup"].content, "apt-get")
    error_message = "install_packages = false still installs packages."
  }
}

run "needs_a_kiln_binary" {
  command = plan

  variables {
    kiln_version = null
  }

  expect_failures = [output.user_data]
}

run "certs_need_a_key" {
  command = plan

  variables {
    tls_mode = "certs"
  }

  expect_failures = [output.user_data]
}

run "rejects_a_bad_tls_mode" {
  command = plan

  variables {
    tls_mode = "letsencrypt"
  }

  expect_failures = [var.tls_mode]
}
