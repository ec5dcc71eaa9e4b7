"""The error hierarchy of MusicBrain.

Every error the library raises on purpose derives from :class:`MusicBrainError`, so the CLI
can turn each into a one-line message (never a traceback) and carry on with the next file.
Messages name the offending value; causes are chained with ``raise ... from``.
(Pattern: librosa's ``ParameterError``.)
"""

from __future__ import annotations


class MusicBrainError(Exception):
    """Base class of every error MusicBrain raises deliberately."""


class MusicBrainWarning(UserWarning):
    """Base class of every warning MusicBrain raises deliberately (the CLI prints these as
    ``musicbrain: warning: ...`` lines; other libraries' warnings keep Python's format)."""


class InputError(MusicBrainError):
    """A path or argument given by the user is unusable (missing, unreadable, a loop)."""


class UnreadableFileError(InputError, OSError):
    """A file the user named cannot be read: missing, no permission, or refused below.

    Also an ``OSError``: code that reports unreadable files one by one (``except
    OSError``) reports these the same way, with this message.
    """


class NotRegularFileError(UnreadableFileError):
    """A path names a FIFO, a device, a socket or a folder where a regular file is read
    (refused before any read: it could block or never end)."""


class FileChangedError(UnreadableFileError):
    """A file's size changed while it was being read (it is still being written)."""


class ConfigError(MusicBrainError):
    """A configuration value or file is invalid."""


# --- audio intake -------------------------------------------------------------------------


class AudioDecodeError(MusicBrainError):
    """An audio file could not be decoded into usable samples."""


class EmptyFileError(AudioDecodeError):
    """The file has zero bytes."""


class NotAudioError(AudioDecodeError):
    """The file is not a container FFmpeg recognises, or holds no audio stream."""


class UnsupportedCodecError(AudioDecodeError):
    """The container is readable but its audio codec has no decoder here."""


class CorruptAudioError(AudioDecodeError):
    """The stream is truncated or corrupt.

    ``share_decoded`` is the fraction (0..1) of the claimed duration that did decode, when
    it is known, so a caller can report a partial decode honestly.
    """

    def __init__(self, message: str, *, share_decoded: float | None = None):
        super().__init__(message)
        self.share_decoded = share_decoded


class ZeroLengthAudioError(AudioDecodeError):
    """The stream decodes to no samples at all."""


class SilentAudioError(AudioDecodeError):
    """Every decoded sample is (digital) silence: there is nothing to analyse."""


class InvalidSamplesError(AudioDecodeError):
    """Decoded samples contain NaN or infinity."""


class AbsurdHeaderError(AudioDecodeError):
    """The header claims an impossible length, sample rate or channel count."""


class DecodeTimeoutError(AudioDecodeError):
    """Decoding took longer than the allowed time (a hostile or pathological file)."""


# --- model --------------------------------------------------------------------------------


class ModelLoadError(MusicBrainError):
    """A checkpoint is missing, mismatched, corrupt or names an unknown architecture."""


# --- data ---------------------------------------------------------------------------------


class DatasetError(MusicBrainError):
    """A data set folder, manifest or cache is malformed."""


class TaxonomyError(DatasetError):
    """A taxonomy file, or a label cell measured against it, is invalid."""


class RenderError(MusicBrainError):
    """Symbolic music could not be parsed or synthesised to audio."""


# --- training -----------------------------------------------------------------------------


class TrainingError(MusicBrainError):
    """Training could not start or continue (bad config, incompatible resume, ...)."""


# --- reports, signing, verification -------------------------------------------------------


class ReportError(MusicBrainError):
    """A report could not be rendered or written."""


class SigningError(MusicBrainError):
    """Keys are missing or unusable, or a signature could not be produced."""


class VerificationError(MusicBrainError):
    """A signature, certificate or hash did not verify."""


# --- robustness ---------------------------------------------------------------------------


class TransformError(MusicBrainError):
    """A robustness transform (re-encoding, resampling, noise, ...) could not be applied."""
