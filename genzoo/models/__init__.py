"""The family registry: a config names its family by one of these strings."""

from genzoo.model import GenerativeModel
from genzoo.models.ddpm import DDPM
from genzoo.models.ebm import EBM
from genzoo.models.flow import Flow
from genzoo.models.gan import GAN
from genzoo.models.latent_diffusion import LatentDiffusion
from genzoo.models.pixel_transformer import PixelTransformer
from genzoo.models.transformer import TransformerLM
from genzoo.models.vae import VAE

FAMILIES: dict[str, type[GenerativeModel]] = {
    TransformerLM.family: TransformerLM,
    VAE.family: VAE,
    DDPM.family: DDPM,
    EBM.family: EBM,
    GAN.family: GAN,
    Flow.family: Flow,
    PixelTransformer.family: PixelTransformer,
    LatentDiffusion.family: LatentDiffusion,
}
