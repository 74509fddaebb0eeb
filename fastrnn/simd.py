"""Explicit SIMD vectors for the Numba kernels: a vector type and the few intrinsics that
``kernels.matmul_add`` is written with.

LLVM vectorises plain loops, but not a register tile (several accumulators carried across a
loop): written with scalars or tuples, it stays scalar. A value of type ``Vec`` is one LLVM
vector (``<4 x double>``, ``<8 x float>``: 256 bits, an AVX2 register), so a tile of them stays
in registers. Machines with narrower registers get the same results through LLVM's splitting
of wide vectors.

Every lane computes ``acc + a * s`` with ``llvm.fmuladd``: fused where the CPU has FMA (as the
scalar code compiled with ``fastmath={"contract"}``), so a vector lane and the same sum written
as a scalar loop round alike. With NUMBA_DISABLE_JIT=1 the same names are plain NumPy
functions (at the end of this module), so the kernels still run as Python.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic, models, register_model

VECTOR_BITS = 256


class Vec(types.Type):
    """A vector of ``lanes`` numbers of one float dtype, held in one LLVM vector value."""

    def __init__(self, dtype, lanes):
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"Vec({dtype} x {lanes})")


@register_model(Vec)
class VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _vec_type(dtype):
    return Vec(dtype, VECTOR_BITS // dtype.bitwidth)


def _suffix(vec):
    return f"v{vec.lanes}f{vec.dtype.bitwidth}"


def _element_pointer(context, builder, arrty, arr, row, col):
    a = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer2(context, builder, a.data, cgutils.unpack_tuple(builder, a.shape),
                                     cgutils.unpack_tuple(builder, a.strides), arrty.layout, [row, col])


def _splat(builder, vty, lanes, value):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


def _first_lanes(builder, lanes, count):
    """<lanes x i1> mask: lane q < count."""
    i64 = ir.IntType(64)
    count = builder.sext(count, i64) if count.type.width < 64 else count
    index = ir.Constant(ir.VectorType(i64, lanes), list(range(lanes)))
    return builder.icmp_signed("<", index, _splat(builder, ir.VectorType(i64, lanes), lanes, count))


def _masked(builder, vec, name, fnty, args):
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.{name}.{_suffix(vec)}.p0")
    return builder.call(fn, args)


@intrinsic
def lanes_of(typingctx, arr):
    """Numbers per vector for arr's dtype (4 for float64, 8 for float32), a compile-time constant."""
    lanes = _vec_type(arr.dtype).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, lanes)

    return types.intp(arr), codegen


@intrinsic
def vload(typingctx, arr, row, col, count):
    """arr[row, col:col + lanes] of a 2-D array with contiguous rows, as a Vec. ``count`` None
    loads all lanes; an int loads the first ``count`` (the rest are 0) and reads nothing past them."""
    vec = _vec_type(arr.dtype)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        ptr = builder.bitcast(_element_pointer(context, builder, arr, args[0], args[1], args[2]), vty.as_pointer())
        align = arr.dtype.bitwidth // 8
        if isinstance(count, types.NoneType):
            return builder.load(ptr, align=align)
        mask = _first_lanes(builder, vec.lanes, args[3])
        fnty = ir.FunctionType(vty, [ptr.type, ir.IntType(32), mask.type, vty])
        return _masked(builder, vec, "load", fnty, [ptr, ir.Constant(ir.IntType(32), align), mask,
                                                    ir.Constant(vty, None)])

    return vec(arr, row, col, count), codegen


@intrinsic
def vstore(typingctx, arr, row, col, value, count):
    """arr[row, col:col + lanes] = value; ``count`` as in ``vload`` (an int writes the first lanes only)."""
    def codegen(context, builder, sig, args):
        vty = context.get_value_type(value)
        ptr = builder.bitcast(_element_pointer(context, builder, arr, args[0], args[1], args[2]), vty.as_pointer())
        align = arr.dtype.bitwidth // 8
        if isinstance(count, types.NoneType):
            builder.store(args[3], ptr, align=align)
        else:
            mask = _first_lanes(builder, value.lanes, args[4])
            fnty = ir.FunctionType(ir.VoidType(), [vty, ptr.type, ir.IntType(32), mask.type])
            _masked(builder, value, "store", fnty, [args[3], ptr, ir.Constant(ir.IntType(32), align), mask])
        return context.get_dummy_value()

    return types.void(arr, row, col, value, count), codegen


@intrinsic
def vfma(typingctx, a, s, acc):
    """acc + a * s lane by lane, s a scalar (cast to the vector's dtype)."""
    if not isinstance(a, Vec) or a != acc:
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(a)
        scalar = _splat(builder, vty, a.lanes, context.cast(builder, args[1], s, a.dtype))
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                            f"llvm.fmuladd.{_suffix(a)}")
        return builder.call(fn, [args[0], scalar, args[2]])

    return a(a, s, acc), codegen


if config.DISABLE_JIT:
    # The kernels run as plain Python (NUMBA_DISABLE_JIT=1): the same operations on small NumPy
    # arrays, unfused, as the scalar kernels were when run as Python.
    def lanes_of(arr):
        return VECTOR_BITS // (8 * arr.dtype.itemsize)

    def vload(arr, row, col, count):
        lanes = lanes_of(arr)
        n = lanes if count is None else count
        v = np.zeros(lanes, arr.dtype)
        v[:n] = arr[row, col:col + n]
        return v

    def vstore(arr, row, col, value, count):
        n = value.shape[0] if count is None else count
        arr[row, col:col + n] = value[:n]

    def vfma(a, s, acc):
        return acc + a * a.dtype.type(s)
