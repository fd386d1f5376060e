"""Akida boards for orchestrators: the kubelet device plugin (`akida-device-plugin`) and
CDI specs (`akida cdi generate`). Only the plugin's modules import grpc (the `[k8s]` extra).
"""
