#!/usr/bin/env bash
# Validates everything under deploy/, terraform/ and the Dockerfile, offline:
#   1. terraform fmt -check            (skipped when terraform is absent)
#   2. kubectl kustomize each overlay  (skipped when kubectl is absent)
#   3. kubernetes-validate --strict    the rendered manifests, against Kubernetes schemas
#   4. deployment invariants           drain timeout vs grace period, cache vs volume
#   5. checkov                         terraform, rendered manifests, Dockerfile
#
# `terraform validate` is not run: it needs `terraform init`, which downloads provider
# plugins (see docs/deploy.md).
#
# checkov and kubernetes-validate are installed once, pinned, into their own virtualenv
# (SILT_VALIDATE_VENV, default ~/.cache/silt/validate-venv) so they never disturb the
# machine's Python packages. Re-running changes nothing. Exit status: 0 only if every
# check that ran passed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

overlays=(aws generic)
# The oldest Kubernetes the manifests support (preStop `sleep` is on by default from
# 1.30) and the newest one the pinned kubernetes-validate ships schemas for.
k8s_versions=(1.30.0 1.37.0)
checkov_version=${CHECKOV_VERSION:-3.3.30}
kubernetes_validate_version=${KUBERNETES_VALIDATE_VERSION:-1.37.0}
venv=${SILT_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/silt/validate-venv}

work=$(mktemp -d "${TMPDIR:-/tmp}/silt-validate.XXXXXX")
trap 'rm -rf "$work"' EXIT

declare -a summary=()
failed=0
record() { summary+=("$(printf '%-6s %s' "$1" "$2")"); [[ $1 == FAIL ]] && failed=1; return 0; }
step() { printf '\n==> %s\n' "$*"; }

# A TF_CLI_CONFIG_FILE that points nowhere only produces a warning on every call.
if [[ -n ${TF_CLI_CONFIG_FILE:-} && ! -f ${TF_CLI_CONFIG_FILE} ]]; then
  unset TF_CLI_CONFIG_FILE
fi

# ---- 1. terraform fmt --------------------------------------------------------------------
step "terraform fmt -check -recursive terraform"
if command -v terraform >/dev/null 2>&1; then
  if terraform fmt -check -recursive -diff terraform; then
    record PASS "terraform fmt ($(terraform version | head -n1))"
  else
    record FAIL "terraform fmt: run \`terraform fmt -recursive terraform\`"
  fi
else
  echo "terraform not found: skipping the format check"
  record SKIP "terraform fmt (no terraform binary)"
fi

# ---- 2. kustomize ------------------------------------------------------------------------
step "kubectl kustomize deploy/overlays/* (${overlays[*]})"
rendered=()
if command -v kubectl >/dev/null 2>&1; then
  mkdir -p "$work/rendered"
  for overlay in "${overlays[@]}"; do
    out="$work/rendered/$overlay.yaml"
    if kubectl kustomize "deploy/overlays/$overlay" >"$out"; then
      count=$(grep -c '^kind:' "$out" || true)
      echo "deploy/overlays/$overlay: $count objects"
      record PASS "kustomize overlays/$overlay ($count objects)"
      rendered+=("$out")
    else
      record FAIL "kustomize overlays/$overlay"
    fi
  done
else
  echo "kubectl not found: skipping rendering, schema validation and the manifest scan"
  record SKIP "kustomize (no kubectl binary)"
fi

# ---- tools -------------------------------------------------------------------------------
step "tools: checkov $checkov_version, kubernetes-validate $kubernetes_validate_version in $venv"
tools_current() {
  [[ -x $venv/bin/checkov && -x $venv/bin/kubernetes-validate ]] \
    && [[ $("$venv/bin/checkov" --version 2>/dev/null) == "$checkov_version" ]] \
    && [[ $("$venv/bin/kubernetes-validate" --version 2>/dev/null) == "$kubernetes_validate_version" ]]
}
tools_ok=1
if ! tools_current; then
  echo "installing (once; takes a minute or two)"
  if python3 -m venv "$venv"; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "checkov==$checkov_version" "kubernetes-validate==$kubernetes_validate_version" || true
  fi
fi
if tools_current; then
  echo "ready"
else
  tools_ok=0
  echo "could not install checkov/kubernetes-validate into $venv"
  record FAIL "tool install (pip install checkov==$checkov_version kubernetes-validate==$kubernetes_validate_version)"
fi

# ---- 3. schemas --------------------------------------------------------------------------
step "kubernetes-validate --strict (Kubernetes ${k8s_versions[*]})"
if ((tools_ok)) && ((${#rendered[@]} > 0)); then
  for version in "${k8s_versions[@]}"; do
    if "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${rendered[@]}"; then
      record PASS "kubernetes-validate --strict, Kubernetes $version (${#rendered[@]} overlays)"
    else
      record FAIL "kubernetes-validate --strict, Kubernetes $version"
    fi
  done
else
  record SKIP "kubernetes-validate (nothing rendered or no tools)"
fi

# ---- 4. invariants the schemas cannot see ------------------------------------------------
step "deployment invariants"
if ((tools_ok)) && ((${#rendered[@]} > 0)); then
  if "$venv/bin/python" - "${rendered[@]}" <<'PY'; then
import os
import re
import sys

import yaml

UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity(text):
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text)).groups()
    return float(number) * UNITS[unit]


problems = []
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    path = "overlays/" + os.path.basename(path).removesuffix(".yaml")
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        name = d["metadata"]["name"]
        spec = d["spec"]["template"]["spec"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            env = {}
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(maps.get(source["configMapRef"]["name"], {}))
            env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
            sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            drain = int(env.get("SILT_DRAIN_TIMEOUT_MS", 30000)) / 1000
            if sleep + drain + 10 > grace:
                problems.append(f"{path}: {name}: preStop {sleep}s + drain {drain}s + 10s margin > grace {grace}s")
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append(f"{path}: {name}: no {probe}")
            if "SILT_CACHE_DISK_BYTES" in env:
                cache_dir = env.get("SILT_CACHE_DIR")
                mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == cache_dir]
                if not mounts:
                    problems.append(f"{path}: {name}: SILT_CACHE_DIR {cache_dir} is not a mounted volume")
                    continue
                limit = volumes[mounts[0]["name"]].get("emptyDir", {}).get("sizeLimit")
                if limit is not None and int(env["SILT_CACHE_DISK_BYTES"]) >= quantity(limit):
                    problems.append(f"{path}: {name}: SILT_CACHE_DISK_BYTES >= cache sizeLimit {limit}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
    echo "drain fits the grace period, probes present, cache fits its volume"
    record PASS "invariants: drain < grace period, probes, cache < sizeLimit"
  else
    record FAIL "invariants (see above)"
  fi
else
  record SKIP "invariants (nothing rendered or no tools)"
fi

# ---- 5. checkov --------------------------------------------------------------------------
# Findings are fixed or suppressed inline with a reason (#checkov:skip=... in terraform
# and the Dockerfile, checkov.io/skipN annotations in deploy/).
checkov() {
  local label=$1
  shift
  step "checkov $label"
  local log="$work/checkov-$label.log"
  if "$venv/bin/checkov" "$@" --skip-download --quiet --compact >"$log" 2>&1; then
    local counts
    counts=$(grep -E '^Passed checks' "$log" | paste -sd ' ' - || true)
    echo "${counts:-no findings}"
    record PASS "checkov $label: ${counts:-passed}"
  else
    cat "$log"
    record FAIL "checkov $label"
  fi
}
if ((tools_ok)); then
  checkov terraform -d terraform --framework terraform
  if ((${#rendered[@]} > 0)); then
    checkov kubernetes -d "$work/rendered" --framework kubernetes
  fi
  checkov dockerfile -f Dockerfile --framework dockerfile
else
  record SKIP "checkov (no tools)"
fi

# ---- summary -----------------------------------------------------------------------------
printf '\n==> summary\n'
printf '%s\n' "${summary[@]}"
if ((failed)); then
  echo "validate-deploy: FAILED"
  exit 1
fi
echo "validate-deploy: OK"
