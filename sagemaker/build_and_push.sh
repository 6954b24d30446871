#!/usr/bin/env bash
# Build the albert-ner training image and push it to Amazon ECR (for `sagemaker/launch.py byoc`).
#
#   sagemaker/build_and_push.sh [--name albert-ner] [--tag latest] [--region REGION] [--no-push]
#
# The account comes from `aws sts get-caller-identity`, the region from --region, $AWS_DEFAULT_REGION,
# $AWS_REGION or `aws configure get region`. China regions (cn-*) push to the registry host
# ACCOUNT.dkr.ecr.REGION.amazonaws.com.cn. The ECR repository is created when missing. Prints the image URI.
set -euo pipefail

name=albert-ner
tag=latest
region=""
push=1
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --region) region="$2"; shift 2 ;;
    --no-push) push=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ "$push" -eq 1 ]; then  # known before the build, so that a missing region does not wait for it
  region="${region:-${AWS_DEFAULT_REGION:-${AWS_REGION:-}}}"
  if [ -z "$region" ]; then
    region="$(aws configure get region || true)"
  fi
  if [ -z "$region" ]; then
    echo "error: no AWS region: pass --region, set AWS_DEFAULT_REGION, or run \`aws configure set region REGION\`" >&2
    exit 2
  fi
  case "$region" in
    cn-*) domain=amazonaws.com.cn ;;  # the aws-cn partition (Beijing, Ningxia)
    *) domain=amazonaws.com ;;
  esac
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
docker build -t "$name:$tag" "$root"
if [ "$push" -eq 0 ]; then
  echo "$name:$tag"
  exit 0
fi

account="$(aws sts get-caller-identity --query Account --output text --region "$region")"
registry="$account.dkr.ecr.$region.$domain"
image="$registry/$name:$tag"

if ! aws ecr describe-repositories --repository-names "$name" --region "$region" >/dev/null 2>&1; then
  aws ecr create-repository --repository-name "$name" --region "$region" >/dev/null
fi
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
docker tag "$name:$tag" "$image"
docker push "$image"
echo "$image"
