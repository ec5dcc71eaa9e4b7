"""The decoder-artifact evidence line (issue 22): spectral combs that upsampling decoders leave.

``ArtifactDetector.from_pretrained("default").analyse(path) -> ArtifactFinding``; see
:mod:`.detector`. Modules: :mod:`.spectrum` (native-rate average spectrum and residue),
:mod:`.peaks` (peaks and their periodicity), :mod:`.detector` (features, classifier,
in-domain check, finding), and, for training only, :mod:`.synth` (synthetic decoders,
torch), :mod:`.corpus` (the corpus) and :mod:`.fit` (classifier, calibration, card).
"""

from musicbrain_cli.artifacts.detector import ArtifactDetector, ArtifactFinding

__all__ = ["ArtifactDetector", "ArtifactFinding"]
