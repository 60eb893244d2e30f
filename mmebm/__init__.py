"""mmebm: multimodal latent generative models with an energy-based prior.

A reproducible companion of Yuan, Cui, Li, Han, "Learning Multimodal Latent
Generative Models with Energy-Based Prior", ECCV 2024 (arXiv 2409.19862).
"""

__version__ = "0.1.0"
from .config import ModelConfig, preset
from .langevin import sample_langevin
from .models import MultimodalVAE, build_model, make_optimizers, train_step
