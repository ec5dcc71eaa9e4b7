"""The symbolic evidence line: what the notes played say about who wrote them (issue 21).

A score-writing model (NotaGen and its fine-tunes, the built-in symbolic generators) leaves
no decoder artifacts: its output is rendered like any human score. What it leaves is in the
notes themselves. This line transcribes a few windows of a track with basic-pitch, reduces
the notes to plain statistics (:mod:`.features`), scores them with a classifier fitted on the
reference corpus's human scores against score-writing generators (:mod:`.fit`), and accuses
only beyond an operating point set on human validation clips (:mod:`.detector`). It cannot
exonerate: the absence of symbolic signs of AI says nothing about how audio was made.
"""
