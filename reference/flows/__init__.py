"""Normalizing flows: planar layers, RealNVP affine couplings and their composition  [lecture: Normalizing Flows, RealNVP]"""
