"""Backend, local endpoints: which endpoint a name means.

A local endpoint is named as Azure names it, by the job folder's endpoint.yml (the spec's `deployment.endpoint`,
default `<name>-endpoint`), so the name a user reads in the spec is the one `capc endpoints show` takes. The
model's name stays an alias wherever one endpoint serves that model. Earlier versions of capc named an endpoint
after its model: such an endpoint keeps its folder (its processes, keys and logs live there), answers to both names, and a
redeploy of its model goes on replacing its model there.
"""

from __future__ import annotations

from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.serving import named_endpoint
from capc.serve.state import EndpointState, endpoint_dir, endpoints_root, read_state


def deploy_target(model_name: str, job_dir: Path, home: Path | None = None) -> str:
    """The endpoint a deploy of model `model_name` (compiled into `job_dir`) goes to."""
    wanted = named_endpoint(job_dir) or model_name
    if read_state(endpoint_dir(wanted, home)) is not None:
        return wanted
    earlier = read_state(endpoint_dir(model_name, home))
    if earlier is not None and _model_name(earlier) == model_name:  # recorded under the model's name by an older capc
        return model_name
    return wanted


def resolve(name: str, home: Path | None = None) -> str:
    """The endpoint `name` means: an endpoint of that name, else the one endpoint serving a model of that name, else
    an older endpoint recorded under its model's name whose job folder names it `name`. Unknown names come back as
    they are (the caller says none exists); a model served by several endpoints is a CapcError naming them."""
    if read_state(endpoint_dir(name, home)) is not None:
        return name
    states = _all_states(home)
    serving = [s.name for s in states if _model_name(s) == name]
    if len(serving) > 1:
        raise CapcError(f"no local endpoint is named `{name}`, and {len(serving)} serve model {name}: {', '.join(serving)}.",
                        "name the endpoint")
    if serving:
        return serving[0]
    renamed = [s.name for s in states if s.name == _model_name(s) and named_endpoint(Path(s.job_dir)) == name]
    return renamed[0] if len(renamed) == 1 else name


def _model_name(state: EndpointState) -> str:
    return state.model.partition(":")[0]


def _all_states(home: Path | None) -> list[EndpointState]:
    root = endpoints_root(home)
    if not root.is_dir():
        return []
    states = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            state = read_state(folder)
        except CapcError:  # a damaged one is reported when asked for by its own name
            continue
        if state is not None:
            states.append(state)
    return states
