import numpy as np

from gramkd.data.paired import PairedArrays, PairedMultimodalDataModule
from gramkd.errors import GramkdError


class SyntheticDataModule(PairedMultimodalDataModule):
    """Paired data whose label is a relation between modalities, generated from a seed.

    Every sample draws two latent vectors u, v ~ N(0, I_k). Its class is a partition of the M
    modalities into two groups (modality m0 always in u's group): a modality in u's group
    observes u, the others observe v, each through its own fixed random linear map plus noise.
    Each modality on its own is a Gaussian whatever the class, so one modality says nothing:
    the label can only be read off by relating modalities (which of them agree). There are
    2**(M-1) classes.
    """

    def __init__(
        self,
        num_modalities: int = 4,
        dim: int = 16,
        latent_dim: int = 4,
        noise: float = 0.3,
        num_samples: int = 8000,
        data_seed: int = 0,
        missing_rate: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_modalities < 2:
            raise GramkdError(f"synthetic data needs at least 2 modalities to relate, got num_modalities={num_modalities}")
        if not 0 <= missing_rate < 1:
            raise GramkdError(f"missing_rate must be in [0, 1), got {missing_rate}")
        self.num_modalities, self.dim, self.latent_dim = num_modalities, dim, latent_dim
        self.noise, self.num_samples, self.data_seed, self.missing_rate = noise, num_samples, data_seed, missing_rate

    @property
    def modalities(self) -> dict[str, tuple[int, ...]]:
        return {f"m{i}": (self.dim,) for i in range(self.num_modalities)}

    @property
    def num_classes(self) -> int:
        return 2 ** (self.num_modalities - 1)

    def load(self) -> PairedArrays:
        rng = np.random.default_rng(self.data_seed)
        n, m, k = self.num_samples, self.num_modalities, self.latent_dim
        labels = np.arange(n) % self.num_classes
        rng.shuffle(labels)
        groups = (labels[:, None] >> np.arange(m - 1)) & 1  # [N, M-1]: group of modalities m1..
        groups = np.concatenate([np.zeros((n, 1), np.int64), groups], axis=1)
        latents = rng.standard_normal((n, 2, k))  # u and v per sample
        mixing = rng.standard_normal((m, k, self.dim)) / np.sqrt(k)
        features, present = {}, {}
        for i, name in enumerate(self.modalities):
            observed = latents[np.arange(n), groups[:, i]]
            features[name] = (observed @ mixing[i] + self.noise * rng.standard_normal((n, self.dim))).astype(np.float32)
            present[name] = rng.random(n) >= self.missing_rate
        return PairedArrays(features=features, labels=labels, present=present)
