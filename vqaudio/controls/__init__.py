"""Per-frame control features: what a prior can be asked to follow (a beat grid and chords).

DSP computes them from audio (``analysis``), a user writes them (``--tempo``, ``--chords``), or
a plan is sampled from statistics of the training music (``plan``). Either way they become one
vector per 80 ms frame (``grid.render``), which the frame prior adds to its temporal input and to
its depth bias (MusicGen-melody, Music ControlNet: a model follows a time-varying control far
more easily than it invents one)."""
