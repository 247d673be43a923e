"""Herald's provider simulator: an independent fake of the external sending API with faults."""

from herald_provider_sim.app import create_app, running_simulator
from herald_provider_sim.config import Faults, FaultValidationError, SimConfig, load_config
from herald_provider_sim.send import SIM_KEY
from herald_provider_sim.state import Simulator
from herald_provider_sim.tokens import make_token

__all__ = [
    "SIM_KEY",
    "FaultValidationError",
    "Faults",
    "SimConfig",
    "Simulator",
    "create_app",
    "load_config",
    "make_token",
    "running_simulator",
]
