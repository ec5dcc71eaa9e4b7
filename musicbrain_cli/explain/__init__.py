"""Explanations: the CAM family (Grad-CAM, FM-G-CAM) and deletion/insertion fidelity.

Stage contract: takes a model (any ``nn.Module`` mapping a spectrogram ``[B, 1, F, T]`` to
logits ``[B, L]``) and a layer name; returns maps on the spectrogram's grid. Imports nothing
from ``report`` or the CLI.
"""

from musicbrain_cli.explain.base import (DEFAULT_LAYER, BaseCAM, CamResult, LabelTarget, TopK,
                                         resolve_layer, top_k_targets)
from musicbrain_cli.explain.fidelity import (SUBSTRATES, BandRemoval, EventHit, FidelityCurve,
                                             FidelityReport, band_removal, band_removal_summary,
                                             deletion_curve, event_peak, event_summary,
                                             fidelity_report, insertion_curve, map_change,
                                             marked_band, occlusion_map, perturbation_curve,
                                             random_map, substrate, top_labels)
from musicbrain_cli.explain.fmgcam import (DEFAULT_DESTRIPE, DEFAULT_NORMALIZE, DEFAULT_REFINE,
                                           NORMALIZE_MODES, REFINE_MODES, FMGradCAM,
                                           blend_maps, exclusive_argmax, plot_fmgcam,
                                           stride_profile)
from musicbrain_cli.explain.gradcam import GradCAM

__all__ = [
    "DEFAULT_LAYER", "DEFAULT_NORMALIZE", "NORMALIZE_MODES", "SUBSTRATES", "BandRemoval", "BaseCAM",
    "EventHit", "band_removal", "band_removal_summary", "event_peak", "event_summary", "map_change",
    "marked_band", "DEFAULT_DESTRIPE", "DEFAULT_REFINE", "REFINE_MODES", "stride_profile",
    "CamResult", "FMGradCAM", "FidelityCurve", "FidelityReport", "GradCAM", "LabelTarget",
    "TopK", "blend_maps", "deletion_curve", "exclusive_argmax", "fidelity_report",
    "insertion_curve", "occlusion_map", "perturbation_curve", "plot_fmgcam", "random_map",
    "resolve_layer", "substrate", "top_k_targets", "top_labels",
]
