"""The udev rule akida_rt ships and the fix texts that point to it.

Permission errors of every transport name this rule, so the message carries the exact
commands to install it and to join the `akida` group.
"""

from __future__ import annotations

from pathlib import Path

RULE_NAME = "99-akida.rules"
GROUP = "akida"
MODE = 0o660


def rule_path() -> Path:
    """The shipped rule file (inside the installed package)."""
    return Path(__file__).with_name(RULE_NAME)


def install_rule_fix() -> str:
    """Shell commands that install the rule and apply it to present devices."""
    return (
        f"sudo install -m 0644 {rule_path()} /etc/udev/rules.d/{RULE_NAME} && "
        "sudo udevadm control --reload-rules && sudo udevadm trigger"
    )


def join_group_fix() -> str:
    """Shell commands that create the group and add the current user to it."""
    return (
        f'sudo groupadd --system -f {GROUP} && sudo usermod -aG {GROUP} "$USER" '
        "(then log out and in again)"
    )


def permission_message(what: str) -> str:
    """The message of a PermissionDeniedError for device `what`."""
    return (
        f"{what}: permission denied. Install the udev rule {RULE_NAME} (group {GROUP}, "
        f"mode 0660): {install_rule_fix()}; and join the group: {join_group_fix()}"
    )
