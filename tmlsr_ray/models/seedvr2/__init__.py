"""SeedVR2 (one-step diffusion video super-resolution), built piece by piece against
``../shared/golden/seedvr2`` (see ``../shared/spec/SEEDVR2.md``)."""
