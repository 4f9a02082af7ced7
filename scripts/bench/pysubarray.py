"""A PyTango device with the subarray's obsState and adminMode attributes and its scan commands, pushing change
and archive events as the Rust devices do: the reference the Rust devices are measured against."""
import enum

from tango import AttrWriteType, DevState
from tango.server import Device, attribute, command, run


class ObsState(enum.IntEnum):
    IDLE = 0
    CONFIGURING = 1
    READY = 2
    SCANNING = 3
    PAUSED = 4
    ABORTED = 5
    FAULT = 6


class AdminMode(enum.IntEnum):
    OFFLINE = 0
    ONLINE = 1
    MAINTENANCE = 2
    NOT_FITTED = 3
    RESERVED = 4


class PySubarray(Device):
    obsState = attribute(dtype=ObsState)
    adminMode = attribute(dtype=AdminMode, access=AttrWriteType.READ_WRITE)

    def init_device(self):
        super().init_device()
        self.set_state(DevState.OFF)
        self._obs_state = ObsState.READY
        self._admin_mode = AdminMode.OFFLINE
        for name in ("obsState", "adminMode"):
            self.set_change_event(name, True, False)
            self.set_archive_event(name, True, False)

    def read_obsState(self):
        return self._obs_state

    def read_adminMode(self):
        return self._admin_mode

    def write_adminMode(self, value):
        self._admin_mode = AdminMode(value)
        self._push("adminMode", self._admin_mode)

    def _push(self, name, value):
        self.push_change_event(name, value)
        self.push_archive_event(name, value)

    @command
    def StartScan(self):
        self._obs_state = ObsState.SCANNING
        self._push("obsState", self._obs_state)

    @command
    def EndScan(self):
        self._obs_state = ObsState.READY
        self._push("obsState", self._obs_state)


if __name__ == "__main__":
    run((PySubarray,))
