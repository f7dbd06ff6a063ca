locals {
  prefix = var.root == "/" ? "" : var.root

  kiln_url = coalesce(
    var.kiln_binary_url,
    var.kiln_version == null ? null : "https://github.com/kilnhq/kiln/releases/download/${var.kiln_version}/kiln-linux-${var.arch}",
    "unset",
  )

  paths = {
    kiln       = "${local.prefix}/usr/local/bin/kiln"
    kiln_admin = "${local.prefix}/usr/local/bin/kiln-agent-admin"
    setup      = "${local.prefix}/usr/local/sbin/kiln-agent-setup"
    etc        = "${local.prefix}/etc/kiln"
    env        = "${local.prefix}/etc/kiln/agent.env"
    units      = "${local.prefix}/etc/systemd/system"
    state      = "${local.prefix}/var/lib/kiln-agent"
    hf_home    = "${local.prefix}/var/lib/kiln-agent/huggingface"
    venv       = "${local.prefix}/opt/kiln/vllm"
    run        = "${local.prefix}/run/kiln"
    log        = "${local.prefix}/var/log/kiln"
  }

  # vLLM's flags; the agent fills {{.Model}}, {{.Host}}, {{.Port}} and
  # {{.MaxNumSeqs}} (KILN_AGENT_CONCURRENCY) per start.
  vllm_flags = trimspace(join(" ", [
    "--max-num-seqs {{.MaxNumSeqs}}",
    "--gpu-memory-utilization ${var.gpu_memory_utilization}",
    var.sleep_mode ? "--enable-sleep-mode" : "",
    var.vllm_extra_args,
  ]))

  engine_command = {
    venv = "${local.paths.venv}/bin/vllm serve {{.Model}} --host {{.Host}} --port {{.Port}} ${local.vllm_flags}"
    container = join(" ", [
      "docker run --rm --init --gpus all --ipc=host --name kiln-vllm-{{.Port}}",
      "-p {{.Host}}:{{.Port}}:8000 -v ${local.paths.hf_home}:/root/.cache/huggingface",
      nonsensitive(var.hf_token != null) ? "--env HF_TOKEN" : "",
      var.sleep_mode ? "--env VLLM_SERVER_DEV_MODE=1" : "",
      "${var.vllm_image} --model {{.Model}} --host 0.0.0.0 --port 8000 ${local.vllm_flags}",
    ])
    command = coalesce(var.engine_command, "unset")
  }[var.engine]

  env = merge(
    var.settings,
    {
      KILN_DATABASE_URL      = var.database_url
      KILN_OBJECT_STORE      = var.object_store_url
      KILN_ENGINE_COMMAND    = local.engine_command
      KILN_ENGINE_MODELS     = join(",", var.models)
      KILN_AGENT_CONCURRENCY = tostring(var.max_num_seqs)
      KILN_ENGINE_SLEEP_MODE = tostring(var.sleep_mode)
      KILN_METRICS_ADDR      = var.metrics_addr
      HF_HOME                = local.paths.hf_home
    },
    nonsensitive(var.hf_token != null) ? { HF_TOKEN = var.hf_token } : {},
    nonsensitive(var.metrics_token != null) ? { KILN_METRICS_TOKEN = var.metrics_token } : {},
    var.secret_settings,
  )

  # Double-quoted values with \ " $ ` escaped read the same to systemd's
  # EnvironmentFile= and to a POSIX shell's ".".
  env_file = join("", [
    for k in sort(keys(local.env)) :
    format("%s=\"%s\"\n", k, replace(replace(replace(replace(local.env[k], "\\", "\\\\"), "\"", "\\\""), "$", "\\$"), "`", "\\`"))
  ])

  unit = templatefile("${path.module}/templates/kiln-agent.service.tftpl", {
    paths     = local.paths
    container = var.engine == "container"
  })

  kiln_admin = templatefile("${path.module}/templates/kiln-agent-admin.sh.tftpl", { paths = local.paths })

  setup = templatefile("${path.module}/templates/kiln-agent-setup.sh.tftpl", {
    paths            = local.paths
    prefix           = local.prefix
    service_manager  = var.service_manager
    install_packages = var.install_packages
    kiln_url         = local.kiln_url
    kiln_sha256      = var.kiln_sha256 == null ? "" : var.kiln_sha256
    engine           = var.engine
    vllm_version     = var.vllm_version
    vllm_image       = var.vllm_image
    require_gpu      = var.require_gpu
    metrics_port     = regex(":([0-9]+)$", var.metrics_addr)[0]
  })

  files = {
    (local.paths.env)                         = { content = local.env_file, permissions = "0600" }
    (local.paths.setup)                       = { content = local.setup, permissions = "0755" }
    (local.paths.kiln_admin)                  = { content = local.kiln_admin, permissions = "0755" }
    "${local.paths.units}/kiln-agent.service" = { content = local.unit, permissions = "0644" }
  }

  user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    files               = local.files
    setup               = local.paths.setup
    ssh_authorized_keys = var.ssh_authorized_keys
  })
}
