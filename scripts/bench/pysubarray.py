"""A PyTango device with the subarray's obsState attribute: the reference the Rust devices are measured against."""
import enum

from tango import DevState
from tango.server import Device, attribute, run


class ObsState(enum.IntEnum):
    IDLE = 0
    CONFIGURING = 1
    READY = 2
    SCANNING = 3
    PAUSED = 4
    ABORTED = 5
    FAULT = 6


class PySubarray(Device):
    obsState = attribute(dtype=ObsState)

    def init_device(self):
        super().init_device()
        self.set_state(DevState.OFF)
        self._obs_state = ObsState.IDLE

    def read_obsState(self):
        return self._obs_state


if __name__ == "__main__":
    run((PySubarray,))
