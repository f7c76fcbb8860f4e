"""Definitions shared by the gateway, export and training: the gRPC API (protos and generated
code in `contract.pb`), the tensor contract between the exported model, Triton and the gateway
(`contract.tensors`), and the text normalisation schemes (`contract.normalization`).

Standard library and protobuf only, so every other package can import it.
"""
