#!/usr/bin/env bash
# Build the albert-ner training image and push it to Amazon ECR (for `sagemaker/launch.py byoc`).
#
#   sagemaker/build_and_push.sh [--name albert-ner] [--tag latest] [--region REGION] [--no-push]
#
# The account comes from `aws sts get-caller-identity`, the region from --region, $AWS_REGION or
# `aws configure get region`. The ECR repository is created when missing. Prints the image URI.
set -euo pipefail

name=albert-ner
tag=latest
region="${AWS_REGION:-}"
push=1
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --region) region="$2"; shift 2 ;;
    --no-push) push=0; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
docker build -t "$name:$tag" "$root"
if [ "$push" -eq 0 ]; then
  echo "$name:$tag"
  exit 0
fi

if [ -z "$region" ]; then
  region="$(aws configure get region || true)"
fi
if [ -z "$region" ]; then
  echo "error: no AWS region: pass --region or set AWS_REGION" >&2
  exit 2
fi
account="$(aws sts get-caller-identity --query Account --output text)"
registry="$account.dkr.ecr.$region.amazonaws.com"
image="$registry/$name:$tag"

if ! aws ecr describe-repositories --repository-names "$name" --region "$region" >/dev/null 2>&1; then
  aws ecr create-repository --repository-name "$name" --region "$region" >/dev/null
fi
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
docker tag "$name:$tag" "$image"
docker push "$image"
echo "$image"
