"""dipbench core: conventions shared by every axis (seeding, schedules, registries, I/O)."""
__version__ = "0.1.0"
