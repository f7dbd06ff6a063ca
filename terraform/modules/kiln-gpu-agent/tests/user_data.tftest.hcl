# tofu test: the user-data kiln-gpu-agent renders for several input sets. Run
# from the module's folder: tofu init && tofu test (no provider is needed).

variables {
  kiln_version     = "v1.2.3"
  database_url     = "postgres://kiln:pw@10.0.0.5:5432/kiln"
  object_store_url = "s3://kiln-bucket?region=eu-west-1"
  models           = ["Qwen/Qwen2.5-3B-Instruct", "google/gemma-3-4b-it"]
}

run "venv_engine" {
  command = plan

  variables {
    max_num_seqs           = 64
    gpu_memory_utilization = 0.85
    hf_token               = "hf_abc"
  }

  assert {
    condition     = startswith(output.user_data, "#cloud-config\n")
    error_message = "user_data is not a #cloud-config document."
  }
  assert {
    condition     = output.engine_command == "/opt/kiln/vllm/bin/vllm serve {{.Model}} --host {{.Host}} --port {{.Port}} --max-num-seqs {{.MaxNumSeqs}} --gpu-memory-utilization 0.85"
    error_message = "the engine command is not vLLM's from the venv with the GPU memory fraction."
  }
  assert {
    condition     = strcontains(output.files["/etc/kiln/agent.env"].content, "KILN_ENGINE_MODELS=\"Qwen/Qwen2.5-3B-Instruct,google/gemma-3-4b-it\"\n")
    error_message = "the models are not KILN_ENGINE_MODELS."
  }
  assert {
    condition     = strcontains(output.files["/etc/kiln/agent.env"].content, "KILN_AGENT_CONCURRENCY=\"64\"\n")
    error_message = "max_num_seqs is not KILN_AGENT_CONCURRENCY."
  }
  assert {
    condition     = strcontains(output.files["/etc/kiln/agent.env"].content, "HF_TOKEN=\"hf_abc\"\n") && output.files["/etc/kiln/agent.env"].permissions == "0600"
    error_message = "the HF token is not in the 0600 environment file."
  }
  assert {
    condition     = strcontains(output.files["/etc/systemd/system/kiln-agent.service"].content, "Restart=always") && strcontains(output.files["/etc/systemd/system/kiln-agent.service"].content, "ExecStart=/usr/local/bin/kiln agent")
    error_message = "the unit does not run kiln agent with Restart=always."
  }
  assert {
    condition     = !strcontains(output.files["/etc/systemd/system/kiln-agent.service"].content, "postgres://") && !strcontains(output.files["/etc/systemd/system/kiln-agent.service"].content, "hf_abc")
    error_message = "a secret is in the unit file."
  }
  assert {
    condition     = strcontains(output.files["/usr/local/sbin/kiln-agent-setup"].content, "'vllm==0.12.0'") && strcontains(output.files["/usr/local/sbin/kiln-agent-setup"].content, "nvidia-smi")
    error_message = "the start-up script does not install vLLM or check the driver."
  }
}

run "container_engine_with_sleep_mode" {
  command = plan

  variables {
    engine     = "container"
    sleep_mode = true
    hf_token   = "hf_abc"
  }

  assert {
    condition     = startswith(output.engine_command, "docker run --rm --init --gpus all") && strcontains(output.engine_command, "--env HF_TOKEN ") && strcontains(output.engine_command, "--enable-sleep-mode")
    error_message = "the container command does not pass the GPU, the token's name and sleep mode."
  }
  assert {
    condition     = !strcontains(output.engine_command, "hf_abc")
    error_message = "the HF token is on the command line."
  }
  assert {
    condition     = strcontains(output.files["/etc/systemd/system/kiln-agent.service"].content, "SupplementaryGroups=docker")
    error_message = "the agent cannot reach Docker."
  }
}

run "custom_command" {
  command = plan

  variables {
    engine         = "command"
    engine_command = "kiln sim --addr {{.Host}}:{{.Port}} --max-num-seqs {{.MaxNumSeqs}}"
    require_gpu    = false
  }

  assert {
    condition     = output.engine_command == "kiln sim --addr {{.Host}}:{{.Port}} --max-num-seqs {{.MaxNumSeqs}}"
    error_message = "engine_command is not passed through."
  }
  assert {
    condition     = !strcontains(output.files["/usr/local/sbin/kiln-agent-setup"].content, "nvidia-smi -L")
    error_message = "require_gpu = false still checks the GPU."
  }
}

run "command_engine_needs_a_command" {
  command = plan

  variables {
    engine = "command"
  }

  expect_failures = [output.user_data]
}

run "rejects_no_models" {
  command = plan

  variables {
    models = []
  }

  expect_failures = [var.models]
}

run "rejects_a_bad_memory_fraction" {
  command = plan

  variables {
    gpu_memory_utilization = 1.5
  }

  expect_failures = [var.gpu_memory_utilization]
}
