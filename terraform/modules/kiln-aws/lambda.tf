# kiln's functions as a Lambda (cmd/kiln-lambda, `make lambda`): kiln serve
# runs inbox_import there (KILN_REMOTE_FUNCTIONS); retries and dead letters
# stay kiln's.

resource "aws_cloudwatch_log_group" "lambda" {
  count             = local.lambda ? 1 : 0
  name              = "/aws/lambda/${var.name}"
  retention_in_days = 30
  tags              = local.tags
}

resource "aws_lambda_function" "kiln" {
  count            = local.lambda ? 1 : 0
  function_name    = var.name
  role             = aws_iam_role.lambda[0].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  timeout          = 900
  memory_size      = 512

  environment {
    variables = merge(
      {
        KILN_DATABASE_URL = local.database_url
        KILN_OBJECT_STORE = local.object_store_url
        KILN_INBOX_PREFIX = var.inbox_prefix
      },
      var.localstack ? { AWS_ENDPOINT_URL = var.localstack_endpoint } : {},
    )
  }

  dynamic "vpc_config" {
    for_each = local.aws ? [1] : []
    content {
      subnet_ids         = local.private_ids
      security_group_ids = [aws_security_group.lambda[0].id]
    }
  }

  depends_on = [aws_cloudwatch_log_group.lambda, aws_iam_role_policy.lambda]
  tags       = local.tags
}
