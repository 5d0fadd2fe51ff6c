"""Stage: plan (quota, --target azure): the peak vCPUs a plan's clusters need per VM family against what is left.

A cluster can hold max_instances nodes at once, so it needs max_instances x the size's vCPUs of its family's quota;
clusters of one family add up. What is left is the family's limit minus its current usage in the workspace's
region (a cluster that already exists counts in both; the check errs on the safe side). The region's sizes and
usage come from the backend (`vm_capacity()`: None on this machine, capc.azure.quota for a workspace).
"""

from __future__ import annotations

from dataclasses import dataclass

from capc.errors import CapcError


@dataclass(frozen=True)
class FamilyQuota:
    family: str
    clusters: tuple[str, ...]
    needed: int
    in_use: int | None
    limit: int | None  # None: the region reports no quota for this family

    @property
    def left(self) -> int | None:
        return None if self.limit is None else self.limit - (self.in_use or 0)

    @property
    def enough(self) -> bool:
        return self.left is not None and self.needed <= self.left

    def to_dict(self) -> dict:
        return {"family": self.family, "clusters": list(self.clusters), "needed_vcpus": self.needed,
                "in_use": self.in_use, "limit": self.limit, "left": self.left, "enough": self.enough}


def needed_quota(plan, sizes: dict, usages: dict) -> list[FamilyQuota]:
    """Per VM family: the plan's peak vCPUs against the region's usage (sizes and usages from capc.azure.quota)."""
    needs: dict[str, list] = {}
    for cluster in dict.fromkeys(job.cluster for job in plan.jobs):
        if cluster.size is None or cluster.max_instances is None:
            continue  # a cluster the spec does not describe: its size is unknown here
        facts = sizes.get(cluster.size.lower())
        if facts is None:
            raise CapcError(
                f"{plan.path}: compute.size `{cluster.size}` (cluster `{cluster.name}`) is not a VM size Azure ML offers in the workspace's region.",
                "choose a size that `az ml compute list-sizes` lists for the region",
            )
        entry = needs.setdefault(facts.family.lower(), [facts.family, [], 0])
        entry[1].append(cluster.name)
        entry[2] += cluster.max_instances * facts.vcpus
    rows = []
    for key, (family, clusters, needed) in sorted(needs.items()):
        usage = usages.get(key)
        rows.append(FamilyQuota(family, tuple(clusters), needed, usage.in_use if usage else None, usage.limit if usage else None))
    return rows


def fill_quota(plans: list, capacity: tuple[dict, dict] | None) -> None:
    """Each plan's `quota` rows from the region's (sizes, usages); nothing to check without a region."""
    if capacity is None:
        return
    for plan in plans:
        plan.quota = needed_quota(plan, *capacity)


def quota_error(plans: list) -> CapcError | None:
    """The error for the first family whose quota is short, if any."""
    for plan in plans:
        for row in plan.quota:
            if not row.enough:
                left = "no quota" if row.left is None else f"{row.left} left ({row.in_use} of {row.limit} in use)"
                return CapcError(
                    f"{plan.path}: the {row.family} clusters ({', '.join(row.clusters)}) may need {row.needed} vCPUs at once; the region has {left}.",
                    "request more quota for this VM family (Azure ML studio > Quota), or lower compute.max_instances or choose another compute.size",
                )
    return None
