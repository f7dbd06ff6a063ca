# tofu test against a live kiln: KILN_BASE_URL and KILN_ADMIN_KEY name it,
# and it must accept loopback receivers (KILN_WEBHOOK_ALLOW_PRIVATE=true).
# terraform/provider's TestExampleProviderOnly runs this with its own kiln.

variables {
  receiver_url = "http://127.0.0.1:9/kiln-hook"
  curators = {
    "ada@example.com" = "curator"
    "root"            = "admin"
  }
}

run "create" {
  command = apply

  assert {
    condition     = startswith(kiln_api_key.pipeline.secret, "sk-kiln-")
    error_message = "the pipeline's key is a kiln secret"
  }

  assert {
    condition     = toset(kiln_api_key.dashboard.scopes) == toset(["api.read"])
    error_message = "the dashboard's key is read-only"
  }

  assert {
    condition     = startswith(kiln_webhook_endpoint.batches.secret, "whsec_")
    error_message = "the endpoint has its signing secret"
  }

  assert {
    condition     = length(kiln_curator.this) == 2 && kiln_curator.this["root"].role == "admin"
    error_message = "both curators exist, with their roles"
  }

  assert {
    condition     = alltrue([for c in kiln_curator.this : startswith(c.key, "ck-")])
    error_message = "each curator has a key"
  }

  assert {
    condition     = length(data.kiln_models.served.ids) > 0
    error_message = "the dashboard's key reads the models kiln serves"
  }
}

# The Go acceptance tests compare the secrets before and after; here the
# rotated secret must still be one, and match the hint kiln shows.
run "rotate_webhook_secret" {
  command = apply

  variables {
    webhook_rotation = "2"
  }

  assert {
    condition     = startswith(kiln_webhook_endpoint.batches.secret, "whsec_")
    error_message = "the rotated endpoint has a signing secret"
  }

  assert {
    condition     = endswith(kiln_webhook_endpoint.batches.secret, trimprefix(kiln_webhook_endpoint.batches.secret_hint, "whsec_…"))
    error_message = "the secret in the state is the one kiln signs with"
  }
}
