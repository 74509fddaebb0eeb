"""Explicit SIMD vectors for the Numba kernels: a vector type and the few intrinsics that
``linalg.matmul_add`` is written with.

LLVM vectorises plain loops, but not a register tile (several accumulators carried across a
loop): written with scalars or tuples, it stays scalar. A value of type ``Vec`` is one LLVM
vector, so a tile of them stays in registers: 512 bits (``<8 x double>``, ``<16 x float>``)
where the CPU has AVX-512, whose 32 registers hold the tiles with twice the numbers per
instruction, else 256 bits (an AVX2 register). Machines with narrower registers get the same
results through LLVM's splitting of wide vectors, and the width changes no result: every
element is summed in the same order with the same multiply-add whatever the lanes.

A ``count`` of ``HALF`` loads or stores the first half of the lanes as a vector of half the
width, unmasked: a row's tail of exactly half a vector (100 columns of float32 in 256 bits)
then needs no masked load or store. AVX2's masked stores are slow on some CPUs (AMD's before
Zen 4), and a masked load of what a masked store just wrote waits for the store to complete.

``vfma`` computes ``acc + a * s`` with ``llvm.fmuladd``, fused where the CPU has FMA, on every
path of ``matmul_add``, so that its paths round alike. With NUMBA_DISABLE_JIT=1 the same
names are plain NumPy functions (at the end of this module), unfused, so the kernels still run
as Python.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.errors import TypingError
from numba.core.imputils import lower_constant
from numba.extending import intrinsic, models, register_model, typeof_impl


def _vector_bits() -> int:
    """512 on a CPU with AVX-512 (as Numba compiles for it: its NUMBA_CPU_NAME and
    NUMBA_CPU_FEATURES, else the host's), else 256."""
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return 512 if "+avx512f" in (config.CPU_FEATURES or "").split(",") else 256
    from llvmlite import binding

    return 512 if binding.get_host_cpu_features().get("avx512f") else 256


VECTOR_BITS = _vector_bits()


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


class Half:
    """The type of ``HALF``."""

    def __repr__(self):
        return "HALF"


HALF = Half()  # the count of ``vload`` and ``vstore`` that moves the first half of the lanes, unmasked


class HalfType(types.Dummy):
    """Numba's type of ``HALF``: the count is known when the kernel compiles."""


half_type = HalfType("half")
register_model(HalfType)(models.OpaqueModel)


@typeof_impl.register(Half)
def _typeof_half(val, c):
    return half_type


@lower_constant(HalfType)
def _lower_half(context, builder, ty, pyval):
    return context.get_dummy_value()


def _moved_type(dtype, count):
    """The vector that ``vload`` and ``vstore`` move for ``count``: half a vector for ``HALF``."""
    vec = _vec_type(dtype)
    return Vec(dtype, vec.lanes // 2) if isinstance(count, HalfType) else vec


def _check_rows(name, arr, count):
    """Typing-time checks: a 2-D float array whose rows may be contiguous (a Fortran-ordered one
    cannot be), and a count that is None, ``HALF`` or an integer."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.dtype in (types.float32, types.float64)
            and arr.layout != "F"):
        raise TypingError(f"{name}: needs a 2-D float32 or float64 array with contiguous rows, got {arr}")
    if not isinstance(count, (types.NoneType, HalfType, types.Integer)):
        raise TypingError(f"{name}: count must be None, HALF or an integer, got {count}")


def _type_name(ty):
    """The suffix LLVM names an overloaded intrinsic with for this type: f64, v4f64, ..."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_type_name(ty.element)}"
    return ty.intrinsic_name


def _intrinsic(builder, name, fnty, args):
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), args)


def _fmuladd(builder, ty, args):
    return _intrinsic(builder, f"llvm.fmuladd.{_type_name(ty)}", ir.FunctionType(ty, [ty] * 3), args)


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


def _masked(builder, name, vty, fnty, args):
    """llvm.masked.load or .store, named for opaque pointers (".p0"), as the LLVM of the numba
    releases this package requires (0.68 and later) expects."""
    return _intrinsic(builder, f"llvm.masked.{name}.{_type_name(vty)}.p0", fnty, args)


@intrinsic
def lanes_of(typingctx, arr):
    """Numbers per vector for arr's dtype (4 for float64, 8 for float32), a compile-time constant."""
    _check_rows("lanes_of", arr, types.none)
    lanes = _vec_type(arr.dtype).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, lanes)

    return types.intp(arr), codegen


@intrinsic
def vload(typingctx, arr, row, col, count):
    """arr[row, col:col + lanes] of a 2-D array with contiguous rows, as a Vec. ``count`` None
    loads all lanes; ``HALF`` the first half, as a vector of half the lanes; an int loads the
    first ``count`` (the rest are 0) and reads nothing past them."""
    _check_rows("vload", arr, count)
    vec = _moved_type(arr.dtype, count)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        ptr = builder.bitcast(_element_pointer(context, builder, arr, args[0], args[1], args[2]), vty.as_pointer())
        align = arr.dtype.bitwidth // 8
        if isinstance(count, (types.NoneType, HalfType)):
            return builder.load(ptr, align=align)
        mask = _first_lanes(builder, vec.lanes, args[3])
        fnty = ir.FunctionType(vty, [ptr.type, ir.IntType(32), mask.type, vty])
        return _masked(builder, "load", vty, fnty, [ptr, ir.Constant(ir.IntType(32), align), mask,
                                                    ir.Constant(vty, None)])

    return vec(arr, row, col, count), codegen


@intrinsic
def vstore(typingctx, arr, row, col, value, count):
    """arr[row, col:col + lanes] = value; ``count`` as in ``vload`` (an int writes the first lanes
    only; ``HALF`` takes a vector of half the lanes)."""
    _check_rows("vstore", arr, count)
    if value != _moved_type(arr.dtype, count):
        raise TypingError(f"vstore: a {value} does not fit a row of {arr} with count {count}")

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(value)
        ptr = builder.bitcast(_element_pointer(context, builder, arr, args[0], args[1], args[2]), vty.as_pointer())
        align = arr.dtype.bitwidth // 8
        if isinstance(count, (types.NoneType, HalfType)):
            builder.store(args[3], ptr, align=align)
        else:
            mask = _first_lanes(builder, value.lanes, args[4])
            fnty = ir.FunctionType(ir.VoidType(), [vty, ptr.type, ir.IntType(32), mask.type])
            _masked(builder, "store", vty, fnty, [args[3], ptr, ir.Constant(ir.IntType(32), align), mask])
        return context.get_dummy_value()

    return types.void(arr, row, col, value, count), codegen


@intrinsic
def vfma(typingctx, a, s, acc):
    """acc + a * s lane by lane, s a scalar (cast to the vector's dtype)."""
    if not isinstance(a, Vec) or a != acc or not isinstance(s, (types.Float, types.Integer)):
        raise TypingError(f"vfma: needs two equal vectors and a number, got {a}, {s}, {acc}")

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(a)
        scalar = _splat(builder, vty, a.lanes, context.cast(builder, args[1], s, a.dtype))
        return _fmuladd(builder, vty, [args[0], scalar, args[2]])

    return a(a, s, acc), codegen


if config.DISABLE_JIT:
    # The kernels run as plain Python (NUMBA_DISABLE_JIT=1): the same operations on small NumPy
    # arrays, unfused, on every path alike.
    def lanes_of(arr):
        return VECTOR_BITS // (8 * arr.dtype.itemsize)

    def vload(arr, row, col, count):
        lanes = lanes_of(arr) // (2 if count is HALF else 1)
        n = lanes if count is None or count is HALF else count
        v = np.zeros(lanes, arr.dtype)
        v[:n] = arr[row, col:col + n]
        return v

    def vstore(arr, row, col, value, count):
        n = value.shape[0] if count is None or count is HALF else count
        arr[row, col:col + n] = value[:n]

    def vfma(a, s, acc):
        return acc + a * a.dtype.type(s)
