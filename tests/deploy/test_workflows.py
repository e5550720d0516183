"""The CI/CD workflows: actionlint-clean, and the release does scan, SBOM, sign and push."""

from __future__ import annotations

import yaml

from tests.deploy.tools import ROOT, run, tool

WORKFLOWS = ROOT / ".github" / "workflows"


def test_actionlint_passes() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files
    result = run(tool("actionlint"), *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_lint_and_the_tests() -> None:
    jobs = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())["jobs"]
    commands = {job: " ".join(step.get("run", "") for step in spec["steps"]) for job, spec in jobs.items()}
    assert "make lint" in commands["lint"] and "make test" in commands["test"]


def test_the_release_scans_describes_signs_and_pushes_the_image() -> None:
    (job,) = yaml.safe_load((WORKFLOWS / "release.yml").read_text())["jobs"].values()
    uses = [step.get("uses", "").split("@")[0] for step in job["steps"]]
    order = [uses.index(action) for action in ("aquasecurity/trivy-action", "anchore/sbom-action",
                                               "docker/build-push-action", "sigstore/cosign-installer")]
    assert order[0] < order[1] < order[3]
    pushes = [step for step in job["steps"] if step.get("with", {}).get("push") is True]
    assert len(pushes) == 1 and job["steps"].index(pushes[0]) > order[0], "pushed only after the scan"
    signing = " ".join(step.get("run", "") for step in job["steps"])
    assert "cosign sign --yes" in signing and "cosign attest" in signing
    assert job["permissions"]["id-token"] == "write", "keyless signing needs the OIDC token"
