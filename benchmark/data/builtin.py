"""The built-in datasets (registered on import), in the order ``datasets`` lists them.

One module per source: :mod:`.movielens` (ml-100k, ml-1m, ml-20m), :mod:`.netflix`,
:mod:`.msd`, :mod:`.lastfm`; the synthetic data set is defined here.
"""

from __future__ import annotations

from .preprocess import SplitConfig
from .readers import find_file
from .spec import DatasetSpec, register_dataset
from .synthetic import DEFAULTS as SYNTH_DEFAULTS
from .synthetic import generate


@register_dataset("synthetic")
def synthetic() -> DatasetSpec:
    return DatasetSpec(
        name="synthetic",
        description="generated from the Mult-VAE generative model, 5,000 users x 2,000 items (no download)",
        source="generated (benchmark.data.synthetic)",
        protocol=SplitConfig(min_rating=None, min_item_users=0, min_user_items=5, n_heldout=500),
        read_raw=lambda raw: generate(**SYNTH_DEFAULTS),
        generated=True,
        options=dict(SYNTH_DEFAULTS),
    )


# The loaders register their datasets on import, in this order (named, not `from . import`,
# which would import this package's __init__ back):
from .movielens import ml_100k  # noqa: E402,F401,I001
from .netflix import netflix  # noqa: E402,F401,I001
from .msd import msd  # noqa: E402,F401,I001
from .lastfm import lastfm  # noqa: E402,F401,I001


def _rehearsal(name: str) -> DatasetSpec:
    """``synthetic:<name>``: generated at the paper's post-filter shape of ``name``."""
    from .rehearsal import SHAPES, generate_at_shape

    users, items, clicks, min_user, min_item, heldout = SHAPES[name]
    return DatasetSpec(
        name=f"synthetic:{name}",
        description=f"rehearsal data at {name}'s full shape after the paper's filters: {users:,} "
        f"users x {items:,} items, about {clicks:,} clicks, from the Mult-VAE generative model "
        f"(no download; generated once and cached)",
        source="generated (benchmark.data.rehearsal) at the shape of Liang et al. (2018) Table 1",
        protocol=SplitConfig(min_rating=None, min_item_users=min_item, min_user_items=min_user,
                             n_heldout=heldout),
        read_raw=lambda raw: generate_at_shape(users, items, clicks, min_user_items=min_user,
                                               min_item_users=min_item),
        generated=True,
        options={"rehearsal": name, "shape": [users, items, clicks], "seed": 0},
    )


for _name in ("ml-20m", "netflix", "msd"):
    register_dataset(f"synthetic:{_name}")(lambda _n=_name: _rehearsal(_n))

__all__ = ["find_file", "synthetic"]
