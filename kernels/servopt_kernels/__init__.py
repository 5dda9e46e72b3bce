"""servopt's compiled core: @njit kernels over plain arrays (numpy + numba only).

The application imports these kernels; kernels never import the application.
"""
